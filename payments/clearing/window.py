"""The daily cut-off: each business date's window of ledger (processing) time, stored on its first run.

See ``payments.clearing.settlement`` for the rules; this module fixes and returns the window.
"""

from __future__ import annotations

import datetime as dt

from payments._db import Pool
from payments.errors import PaymentsError
from payments.fares.model import CHINA, SERVICE_DAY_STARTS

__all__ = ["SettlementRefused", "cut_off", "settlement_window"]

_LOCK = 0x53_45_54_4C  # "SETL": one settlement run at a time
_FAR_PAST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SettlementRefused(PaymentsError):
    problem_type = "settlement-refused"
    problem_title = "The settlement cannot run"
    problem_status = 409


def cut_off(day: dt.date) -> dt.datetime:
    """The end of service day ``day``: the next day's 04:00, China time."""
    return dt.datetime.combine(day + dt.timedelta(days=1), SERVICE_DAY_STARTS, CHINA)


async def settlement_window(
    pool: Pool, day: dt.date, now: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime, bool]:
    """(from, to, rerun): the stored window of ``day``, or a new one stored now."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        run = await connection.fetchrow(
            "SELECT as_of, previous_date FROM payments.settlement_runs WHERE business_date = $1", day
        )
        previous = await connection.fetchrow(
            "SELECT business_date, as_of FROM payments.settlement_runs WHERE business_date < $1 "
            "ORDER BY business_date DESC LIMIT 1",
            day,
        )
        start = previous["as_of"] if previous is not None else _FAR_PAST
        if run is not None:
            if run["previous_date"] != (previous["business_date"] if previous is not None else None):
                raise SettlementRefused(f"the runs before {day} changed since it was settled")
            return start, run["as_of"], True
        later = await connection.fetchval(
            "SELECT max(business_date) FROM payments.settlement_runs WHERE business_date > $1", day
        )
        if later is not None:
            raise SettlementRefused(f"{later} is settled already: settle the days in order")
        clock = now or await connection.fetchval("SELECT clock_timestamp()")
        assert clock is not None
        if clock < cut_off(day) - dt.timedelta(days=1):
            raise SettlementRefused(f"service day {day} has not begun")
        as_of = await connection.fetchval(
            "SELECT least($1::timestamptz, $2::timestamptz, (SELECT min(xact_start) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL))",
            cut_off(day),
            clock,
        )
        as_of = max(as_of, start)
        await connection.execute(
            "INSERT INTO payments.settlement_runs (business_date, as_of, previous_date) VALUES ($1, $2, $3)",
            day,
            as_of,
            previous["business_date"] if previous is not None else None,
        )
        return start, as_of, False
