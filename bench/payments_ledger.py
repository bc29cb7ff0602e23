"""Ledger throughput: batched, one per call, through the group-commit batcher, and a hot account.

Every figure is measured in this run on a fresh database of the embedded (durable: fsync on)
PostgreSQL, or of ``CITIZEN_DATABASE_URL``'s server:

- ``raw_insert``: the same transfer rows COPYed into a plain copy of ``payments.transfers``
  (same columns, keys and checks), same batch size and concurrency: the baseline.
- ``batched_spread``: ``create_transfers`` with batches of BATCH, e-purse → one of 100 operators.
- ``batched_hot``: the same, every transfer crediting one operator account.
- ``single_call``: one transfer per ``create_transfers`` call (one transaction each), CONCURRENCY callers.
- ``single_batcher`` / ``single_batcher_hot``: one transfer per request, CALLERS concurrent
  requests, through ``TransferBatcher`` (requests answered after their batch commits).

Run: ``python -m bench.payments_ledger`` (``BENCH_SCALE=0.2`` for a quick run).
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from backend.runtime import migrate_database
from bench._harness import emit, services
from payments.ledger import Account, AccountCode, AccountFlags, Transfer, create_accounts, create_transfers
from payments.ledger.batcher import TransferBatcher
from payments.ledger.check import check_ledger
from payments.ledger.ids import new_id

BENCH = "payments_ledger"
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
BATCH = 8000
CONCURRENCY = 4
CALLERS = 512
N_BATCHED = int(400_000 * SCALE)
N_SINGLE = int(10_000 * SCALE)
N_BATCHER = int(100_000 * SCALE)
PURSES = 10_000
OPERATORS = 100


def _transfers(n: int, purses: list[uuid.UUID], operators: list[uuid.UUID]) -> list[Transfer]:
    rnd = random.Random(7)
    return [
        Transfer(
            id=new_id(),
            debit_account_id=rnd.choice(purses),
            credit_account_id=rnd.choice(operators),
            amount=rnd.randint(100, 400),
            code=1,
        )
        for _ in range(n)
    ]


async def _timed(n: int, run: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await run()
    return n / (time.perf_counter() - started)


async def _in_lanes(chunks: list[Any], lanes: int, work: Callable[[Any], Awaitable[None]]) -> None:
    queue = list(reversed(chunks))

    async def lane() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(lane() for _ in range(lanes)))


async def main() -> None:
    with services() as resolved:
        url = resolved.settings.database.url
        assert url is not None
        name = f"bench_payments_{os.getpid()}"
        admin = await asyncpg.connect(url.reveal())
        await admin.execute(f'CREATE DATABASE "{name}"')
        version = await admin.fetchval("SHOW server_version")
        fsync = await admin.fetchval("SHOW fsync")
        sync_commit = await admin.fetchval("SHOW synchronous_commit")
        await admin.close()
        parts = urlsplit(url.reveal())
        db_url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
        import msgspec

        from backend.settings import Secret

        await migrate_database(
            resolved.settings.replace(
                database=msgspec.structs.replace(resolved.settings.database, url=Secret(db_url))
            )
        )
        pool = await asyncpg.create_pool(db_url, min_size=20, max_size=20)
        assert pool is not None
        context = {
            "postgres": version,
            "fsync": fsync,
            "synchronous_commit": sync_commit,
            "batch": BATCH,
            "concurrency": CONCURRENCY,
        }
        try:
            await _run(pool, context)
            problems = await check_ledger(pool)
            emit(BENCH, "ledger_check_discrepancies", len(problems), "count", target=0, **context)
        finally:
            await pool.close()
            admin = await asyncpg.connect(url.reveal())
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def _run(pool: asyncpg.Pool, context: dict[str, Any]) -> None:
    control = uuid.uuid4()
    purses = [uuid.uuid4() for _ in range(PURSES)]
    operators = [uuid.uuid4() for _ in range(OPERATORS)]
    flags = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    await create_accounts(
        pool,
        [Account(id=control, code=AccountCode.CONTROL)]
        + [Account(id=p, code=AccountCode.EPURSE, flags=flags) for p in purses]
        + [Account(id=o, code=AccountCode.OPERATOR_PAYABLE) for o in operators],
    )
    funding = [
        Transfer(id=new_id(), debit_account_id=control, credit_account_id=p, amount=10**12) for p in purses
    ]
    await create_transfers(pool, funding)

    async with pool.acquire() as c:
        await c.execute("CREATE TABLE public.raw_transfers (LIKE payments.transfers INCLUDING ALL)")

    # Baseline: COPY of the same rows, same batch size and concurrency.
    rows = _transfers(N_BATCHED, purses, operators)
    now = time.time()
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(now, dt.UTC)
    records = [
        (
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            None,
            156,
            1,
            0,
            0,
            None,
            None,
            None,
            None,
            stamp,
        )
        for t in rows
    ]

    async def copy(chunk: list[Any]) -> None:
        async with pool.acquire() as c, c.transaction():
            await c.copy_records_to_table("raw_transfers", schema_name="public", records=chunk)

    raw = await _timed(N_BATCHED, lambda: _in_lanes(_chunks(records, BATCH), CONCURRENCY, copy))
    emit(BENCH, "raw_insert", raw, "rows/s", **context)

    async def batch(chunk: list[Transfer]) -> None:
        await create_transfers(pool, chunk)

    spread = await _timed(N_BATCHED, lambda: _in_lanes(_chunks(rows, BATCH), CONCURRENCY, batch))
    emit(
        BENCH,
        "batched_spread",
        spread,
        "transfers/s",
        baseline="raw_insert",
        baseline_value=raw,
        target=">= 50000/s and >= 0.3 x raw_insert",
        **context,
    )
    hot_rows = _transfers(N_BATCHED, purses, [operators[0]])
    hot = await _timed(N_BATCHED, lambda: _in_lanes(_chunks(hot_rows, BATCH), CONCURRENCY, batch))
    emit(
        BENCH,
        "batched_hot",
        hot,
        "transfers/s",
        baseline="batched_spread",
        baseline_value=spread,
        target=">= 0.5 x batched_spread",
        **context,
    )

    singles = _transfers(N_SINGLE, purses, operators)
    single_lanes = 16

    async def one(t: Transfer) -> None:
        await create_transfers(pool, [t])

    single = await _timed(N_SINGLE, lambda: _in_lanes(singles, single_lanes, one))
    emit(
        BENCH,
        "single_call",
        single,
        "transfers/s",
        baseline="batched_spread",
        baseline_value=spread,
        target=">= 3000/s",
        **{**context, "concurrency": single_lanes, "batch": 1},
    )

    for metric, targets in (("single_batcher", operators), ("single_batcher_hot", [operators[0]])):
        batcher = TransferBatcher(pool, lanes=CONCURRENCY)
        requests = _transfers(N_BATCHER, purses, targets)

        async def via_batcher(t: Transfer, batcher: TransferBatcher = batcher) -> None:
            await batcher.submit([t])

        rate = await _timed(N_BATCHER, functools.partial(_in_lanes, requests, CALLERS, via_batcher))
        await batcher.close()
        emit(
            BENCH,
            metric,
            rate,
            "transfers/s",
            baseline="batched_spread",
            baseline_value=spread,
            target=">= 3000/s",
            **{**context, "concurrency": CALLERS, "batch": "coalesced"},
        )


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


if __name__ == "__main__":
    asyncio.run(main())
