"""Fare-cap rebates for stored-value taps, computed at settlement with :func:`cap_rebates`.

Taps are debited offline at full fare; a rider whose taps with one operator went beyond that
operator's daily or weekly cap is paid the excess back into the e-purse. For each (e-purse,
operator) pair with a purchase in the run's window, the rider's purchases with that operator
for every service day of the week(s) concerned (all windows up to the run's cut-off: earlier taps
count towards the caps too) go through ``cap_rebates``; what runs of earlier business dates already
paid for a day is subtracted, so a late tap on a day settled before pays only the difference (and
a re-run, which reads only up to its own cut-off, computes what it computed the first time).
Rebates are never clawed back (a negative difference pays nothing).

QR rides are capped when charged (``payments.fares.qr``): their days never exceed a cap, so
they never earn a rebate here, and the rule can apply to every purchase alike.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict

import msgspec

from payments._db import Connection, Pool
from payments.fares import DayTaps, FareTable, cap_rebates, week_start

__all__ = ["EPOCH", "SERVICE_DAY_SQL", "Rebate", "compute_rebates"]

EPOCH = dt.date(1970, 1, 1)
# The service day of a purchase as days since 1970-01-01: China time (+8 h) with the day changing
# at 04:00, i.e. UTC + 4 h (payments.fares.service_day), from the tap time in user_data_64 (ms).
SERVICE_DAY_SQL = (
    '((coalesce(t.user_data_64, (extract(epoch FROM t."timestamp") * 1000)::bigint) / 1000 + 14400)'
    " / 86400)::int"
)


class Rebate(msgspec.Struct, frozen=True):
    operator_account: uuid.UUID
    epurse: uuid.UUID
    service_day: dt.date
    amount: int


async def compute_rebates(  # noqa: PLR0917 - the window and what to rate it with
    db: Pool | Connection,
    tables: dict[uuid.UUID, FareTable],
    window_from: dt.datetime,
    window_to: dt.datetime,
    first_day: dt.date,
    business_date: dt.date,
) -> list[Rebate]:
    """Rebates owed for the window's taps with the operators of ``tables`` (payable account → table)."""
    capped = [op for op, table in tables.items() if table.caps.daily or table.caps.weekly]
    if not capped:
        return []
    low = (week_start(first_day) - EPOCH).days
    high = (business_date - EPOCH).days
    rows = await db.fetch(
        f"""
        WITH pairs AS (
            SELECT DISTINCT t.debit_account_id AS purse, t.credit_account_id AS op
            FROM payments.transfers t
            WHERE t.code = 1 AND t."timestamp" >= $1 AND t."timestamp" < $2
              AND t.credit_account_id = ANY($3::uuid[])
        )
        SELECT p.purse, p.op, {SERVICE_DAY_SQL} AS day, sum(t.amount)::bigint AS debited
        FROM pairs p JOIN payments.transfers t ON t.debit_account_id = p.purse AND t.credit_account_id = p.op
        WHERE t.code = 1 AND t."timestamp" < $2 AND {SERVICE_DAY_SQL} BETWEEN $4 AND $5
        GROUP BY 1, 2, 3
        """,  # noqa: S608 - constant SQL fragments only
        window_from,
        window_to,
        capped,
        low,
        high,
    )
    if not rows:
        return []
    paid_rows = await db.fetch(
        "SELECT t.credit_account_id AS purse, t.debit_account_id AS op, t.user_data_32 AS day, "
        "sum(t.amount)::bigint AS paid FROM payments.transfers t "
        "WHERE t.code = 3 AND t.debit_account_id = ANY($1::uuid[]) AND t.user_data_64 < $2 "
        "AND t.user_data_32 BETWEEN $3 AND $4 GROUP BY 1, 2, 3",
        capped,
        high,
        low,
        high,
    )
    paid = {(r["purse"], r["op"], r["day"]): int(r["paid"]) for r in paid_rows}
    days: dict[tuple[uuid.UUID, uuid.UUID], list[DayTaps]] = defaultdict(list)
    for r in rows:
        days[(r["purse"], r["op"])].append(DayTaps(EPOCH + dt.timedelta(days=r["day"]), int(r["debited"])))
    rebates: list[Rebate] = []
    for (purse, op), entries in days.items():
        for day, owed in sorted(cap_rebates(tables[op], entries).items()):
            due = owed - paid.get((purse, op, (day - EPOCH).days), 0)
            if due > 0:
                rebates.append(Rebate(op, purse, day, due))
    rebates.sort(key=lambda r: (str(r.operator_account), str(r.epurse), r.service_day))
    return rebates
