"""Settlement throughput: a day of N taps settled, beside a raw SQL aggregate of the same rows.

On a fresh database of the embedded (durable) PostgreSQL, or of ``CITIZEN_DATABASE_URL``'s server:
N purchase transfers (e-purse → operator payable, tap time in ``user_data_64``, terminal in the
reference, as ``payments.posting`` writes them) are COPYed straight into the ledger with the
accounts' totals set to match (seeding only: ``check_ledger`` passes afterwards), then:

- ``raw_aggregate``: ``SELECT credit_account_id, count(*), sum(amount) ... GROUP BY 1`` over the
  same window (the baseline: what PostgreSQL needs just to read and sum the rows);
- ``settle``: ``payments.clearing.settlement.settle`` end to end (cut-off, aggregate per operator,
  terminal and service day, concession join, terminal totals, files, fee and settlement
  transfers), no caps: taps/s, and the 10-million-tap extrapolation against the 5-minute target;
- ``settle_rerun``: the same day again (reads the same rows, finds every transfer, moves nothing);
- ``cap_rebates``: ``compute_rebates`` over the same window with a daily cap on every operator
  (the rider-level pass a capped city adds), taps/s.

Run: ``python -m bench.payments_settlement`` (``BENCH_TAPS=200000`` for a quick run).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

from backend.runtime import migrate_database
from backend.settings import Secret
from bench._harness import emit, services
from payments.clearing.rebates import compute_rebates
from payments.clearing.settlement import settle
from payments.demo import ensure_platform_accounts
from payments.fares import Caps, FareTable, service_day
from payments.ledger import AccountCode
from payments.ledger.check import check_ledger
from payments.ledger.ids import new_id
from payments.posting import operator_account_id

BENCH = "payments_settlement"
N = int(os.environ.get("BENCH_TAPS", "1000000"))
OPERATORS = 20
PURSES = max(1000, N // 5)
TERMINALS = 2000
TARGET_TAPS = 10_000_000
TARGET_SECONDS = 300
COPY_CHUNK = 100_000


async def _seed(pool: Any, now: dt.datetime) -> dt.datetime:
    """COPY the accounts and N taps; returns the earliest ledger timestamp used."""
    rnd = random.Random(11)
    purses = [uuid.uuid4() for _ in range(PURSES)]
    operators = [f"op-{n:02d}" for n in range(OPERATORS)]
    async with pool.acquire() as c:
        await c.copy_records_to_table(
            "accounts",
            schema_name="payments",
            columns=("id", "ledger", "code", "flags", "reference"),
            records=[(p, 156, int(AccountCode.EPURSE), 0, None) for p in purses]
            + [
                (operator_account_id(o), 156, int(AccountCode.OPERATOR_PAYABLE), 0, f"operator:{o}")
                for o in operators
            ],
        )
    columns: tuple[str, ...] = (
        "id",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "ledger",
        "code",
        "flags",
    )
    columns += ("user_data_64", "user_data_32", "reference", "timestamp")
    start = now - dt.timedelta(hours=3)
    span = 3 * 3600 - 60
    for offset in range(0, N, COPY_CHUNK):
        rows = []
        for n in range(offset, min(N, offset + COPY_CHUNK)):
            at = start + dt.timedelta(seconds=span * n / N)
            rows.append(
                (
                    new_id(),
                    purses[rnd.randrange(PURSES)],
                    operator_account_id(operators[rnd.randrange(OPERATORS)]),
                    rnd.randint(200, 400),
                    156,
                    1,
                    0,
                    int((at - dt.timedelta(seconds=30)).timestamp() * 1000),
                    n,
                    f"purchase:bench:{n}@T-{rnd.randrange(TERMINALS):04d}",
                    at,
                )
            )
        async with pool.acquire() as c:
            await c.copy_records_to_table("transfers", schema_name="payments", columns=columns, records=rows)
    async with pool.acquire() as c:
        await c.execute(
            """
            WITH d AS (SELECT debit_account_id AS id, sum(amount)::bigint AS s
                           FROM payments.transfers GROUP BY 1),
                 k AS (SELECT credit_account_id AS id, sum(amount)::bigint AS s
                           FROM payments.transfers GROUP BY 1),
                 ids AS (SELECT id FROM d UNION SELECT id FROM k)
            UPDATE payments.accounts a SET debits_posted = coalesce(d.s, 0), credits_posted = coalesce(k.s, 0)
            FROM ids LEFT JOIN d USING (id) LEFT JOIN k USING (id) WHERE a.id = ids.id
            """
        )
        await c.execute("ANALYZE payments.transfers")
        await c.execute("ANALYZE payments.accounts")
    return start


async def main() -> None:
    with services() as resolved:
        url = resolved.settings.database.url
        assert url is not None
        name = f"bench_settlement_{os.getpid()}"
        admin = await asyncpg.connect(url.reveal())
        await admin.execute(f'CREATE DATABASE "{name}"')
        version = await admin.fetchval("SHOW server_version")
        await admin.close()
        parts = urlsplit(url.reveal())
        db_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
        await migrate_database(
            resolved.settings.replace(
                database=msgspec.structs.replace(resolved.settings.database, url=Secret(db_url))
            )
        )
        pool = await asyncpg.create_pool(db_url, min_size=2, max_size=4)
        assert pool is not None
        context = {"postgres": version, "taps": N, "operators": OPERATORS, "purses": PURSES}
        try:
            await _run(pool, context)
        finally:
            await pool.close()
            admin = await asyncpg.connect(url.reveal())
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def _run(pool: Any, context: dict[str, Any]) -> None:
    await ensure_platform_accounts(pool)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    first = await _seed(pool, now)
    emit(BENCH, "seed", N / (time.perf_counter() - started), "taps/s", **context)
    day = service_day(now)

    started = time.perf_counter()
    raw = await pool.fetch(
        "SELECT credit_account_id, count(*), sum(amount) FROM payments.transfers "
        'WHERE code = 1 AND "timestamp" >= $1 AND "timestamp" < $2 GROUP BY 1',
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        now,
    )
    raw_rate = N / (time.perf_counter() - started)
    assert len(raw) == OPERATORS
    emit(BENCH, "raw_aggregate", raw_rate, "taps/s", **context)

    started = time.perf_counter()
    report = await settle(pool, day, key=bytes(32), fee_bps=50, now=now)
    seconds = time.perf_counter() - started
    rate = N / seconds
    assert sum(o.taps for o in report.operators) == N, "the window missed taps"
    emit(
        BENCH,
        "settle",
        rate,
        "taps/s",
        baseline="raw_aggregate",
        baseline_value=raw_rate,
        target=f"{TARGET_TAPS} taps in <= {TARGET_SECONDS} s (>= {TARGET_TAPS // TARGET_SECONDS}/s)",
        seconds=round(seconds, 2),
        extrapolated_10m_seconds=round(TARGET_TAPS / rate, 1),
        **context,
    )
    started = time.perf_counter()
    again = await settle(pool, day, key=bytes(32), fee_bps=50)
    assert again.created == 0
    emit(BENCH, "settle_rerun", N / (time.perf_counter() - started), "taps/s", baseline="settle",
         baseline_value=rate, **context)  # fmt: skip

    tables = {
        operator_account_id(f"op-{n:02d}"): FareTable(
            operator=f"op-{n:02d}", default_fare=300, caps=Caps(daily=900)
        )
        for n in range(OPERATORS)
    }
    started = time.perf_counter()
    rebates = await compute_rebates(
        pool, tables, report.window_from, report.window_to, service_day(first), day
    )
    rebate_rate = N / (time.perf_counter() - started)
    emit(
        BENCH,
        "cap_rebates",
        rebate_rate,
        "taps/s",
        baseline="raw_aggregate",
        baseline_value=raw_rate,
        rebates=len(rebates),
        extrapolated_10m_seconds=round(TARGET_TAPS / rebate_rate, 1),
        **context,
    )
    problems = await check_ledger(pool)
    emit(BENCH, "ledger_check_discrepancies", len(problems), "count", target=0, **context)


if __name__ == "__main__":
    asyncio.run(main())
