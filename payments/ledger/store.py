"""The ledger's PostgreSQL side: one transaction per batch, set-based writes.

``create_transfers`` is TigerBeetle's ``create_transfers`` on PostgreSQL. For a batch it:

1. reads the immutable part of the pending transfers the batch posts or voids (to know their accounts);
2. locks the accounts involved: a large batch (``SERIAL_BATCH_MIN`` transfers or more) takes the
   ledger's writer lock exclusively, so batches take turns and a hot account costs nothing
   extra; a small batch shares that lock and locks its accounts with one
   ``SELECT … ORDER BY id FOR UPDATE`` (id order: no deadlock between batches);
3. reads, in one query, which ids already exist or already failed, and the reservations' states;
4. evaluates the batch in memory (``engine.evaluate``: the rules, in order, with linked chains);
5. writes with one statement per table: the new transfers by binary COPY, one aggregated
   ``UPDATE … FROM unnest(…)`` for the account totals, the reservations, the failed ids.

A large batch of plain transfers (the bulk of taps and settlements) is written ahead
(``ledger.ahead``): its rows are COPYed before it waits for the lock, which then covers one
statement applying its per-account totals. When that cannot be shown to give ``ok`` for every
transfer, the attempt is rolled back and the batch takes the way above.

Given a pool it uses its own connection and transaction; given a connection it runs inside a
(nested) transaction there, so a caller can post in the same transaction as its own rows. A
batch that collides with a concurrent one on a new id (unique violation) is retried whole.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from payments._db import Connection, Pool
from payments.ledger import sql
from payments.ledger.ahead import NotAhead, written_ahead_txn
from payments.ledger.engine import evaluate
from payments.ledger.snapshot import TRANSFER_COLUMNS, AccountState, PendingState, TransferRow
from payments.ledger.types import Transfer, TransferFlags, TransferResult

__all__ = ["create_transfers", "create_transfers_txn", "expire_pending"]

_RESOLVE = int(TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
_ATTEMPTS = 5
SERIAL_BATCH_MIN = 256
WRITER_LOCK = sql.WRITER_LOCK


async def create_transfers(
    db: Pool | Connection, transfers: Sequence[Transfer], *, now: dt.datetime | None = None
) -> list[TransferResult]:
    """Apply a batch; one result per transfer, in order. ``now`` overrides the database clock (tests)."""
    if not transfers:
        return []
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection:
            return await _with_retries(connection, list(transfers), now)
    return await _with_retries(db, list(transfers), now)


async def _with_retries(
    connection: Connection, transfers: list[Transfer], now: dt.datetime | None
) -> list[TransferResult]:
    ahead = len(transfers) >= SERIAL_BATCH_MIN
    attempt = 0
    while True:
        try:
            async with connection.transaction():
                if ahead:
                    return await written_ahead_txn(connection, transfers, now)
                return await create_transfers_txn(connection, transfers, now=now)
        except NotAhead:
            ahead = False  # rolled back: the usual way, everything under the lock
        except (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError):
            if ahead:  # an id written before (a retry) or meanwhile: the usual way answers it
                ahead = False
                continue
            attempt += 1
            if attempt == _ATTEMPTS:
                raise


async def create_transfers_txn(
    connection: Connection, transfers: list[Transfer], *, now: dt.datetime | None = None
) -> list[TransferResult]:
    """The batch inside the caller's transaction (see the module docstring)."""
    # First what needs no lock (nothing here reads the ledger): the accounts and ids the batch
    # names. A batch waiting for its turn does this while the one before it holds the lock.
    pending_ids = list({t.pending_id for t in transfers if t.flags & _RESOLVE and t.pending_id is not None})
    account_ids = {t.debit_account_id for t in transfers} | {t.credit_account_id for t in transfers}
    account_ids.discard(None)
    transfer_ids = list({t.id for t in transfers})
    # Large batches take turns as the only writer (TigerBeetle's single-writer model): measured,
    # two big batches locking thousands of the same rows in parallel run several times slower
    # than one after the other. The writer holds the ledger lock exclusively and needs no row
    # locks; small batches (and the expiry sweep) share the lock and lock their rows (id order).
    exclusive = len(transfers) >= SERIAL_BATCH_MIN
    lock = "SELECT pg_advisory_xact_lock($1), now()" if exclusive else sql.LOCK_SHARED
    locked = await connection.fetchrow(lock, sql.WRITER_LOCK)
    assert locked is not None
    started: dt.datetime = locked[1]
    pending: dict[uuid.UUID, PendingState] = {}
    if pending_ids:
        for r in await connection.fetch(
            "SELECT id, debit_account_id, credit_account_id, amount, ledger, code, flags "
            "FROM payments.transfers WHERE id = ANY($1::uuid[])",
            pending_ids,
        ):
            pending[r["id"]] = PendingState(
                r["debit_account_id"],
                r["credit_account_id"],
                r["amount"],
                r["ledger"],
                r["code"],
                bool(r["flags"] & TransferFlags.PENDING),
                None,
                "none",
            )
            account_ids.update((r["debit_account_id"], r["credit_account_id"]))
    rows = await connection.fetch(sql.READ_ACCOUNTS if exclusive else sql.LOCK_ACCOUNTS, list(account_ids))
    # By position: a Record looked up by name costs more than the rest of building the state.
    accounts = {r[0]: AccountState(r[1], r[2], r[3], [r[4], r[5], r[6], r[7]]) for r in rows}
    if now is None:
        now = started  # now(): the transaction's start, as the database clock has it
    existing: dict[uuid.UUID, TransferRow] = {}
    failed: dict[uuid.UUID, str] = {}
    for r in await connection.fetch(sql.EXISTING, transfer_ids):
        if r["id"] is not None:
            existing[r["id"]] = TransferRow(*(r[c] for c in TRANSFER_COLUMNS))
        if r["result"] is not None:
            failed[r["qid"]] = r["result"]
    if pending:
        for r in await connection.fetch(
            "SELECT id, expires_at, state, resolved_by FROM payments.pending_transfers "
            "WHERE id = ANY($1::uuid[]) FOR UPDATE",
            list(pending),
        ):
            p = pending[r["id"]]
            p.expires_at, p.state, p.resolved_by = r["expires_at"], r["state"], r["resolved_by"]
    outcome = evaluate(
        transfers, accounts=accounts, existing=existing, failed=failed, pending=pending, now=now
    )
    await _write(connection, outcome.rows, outcome.deltas)
    if outcome.new_pending:
        await connection.execute(
            "INSERT INTO payments.pending_transfers (id, debit_account_id, credit_account_id, amount, "
            "expires_at, state, resolved_by, resolved_at) "
            "SELECT id, d, c, a, e, s, b, CASE WHEN s = 'pending' THEN NULL ELSE $9::timestamptz END "
            "FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::timestamptz[], "
            "$6::text[], $7::uuid[], $8::int[]) AS x(id, d, c, a, e, s, b, n)",
            *_columns(
                [
                    (
                        k,
                        p.debit_account_id,
                        p.credit_account_id,
                        p.amount,
                        p.expires_at,
                        p.state,
                        p.resolved_by,
                        0,
                    )
                    for k, p in outcome.new_pending
                ],
                8,
            ),
            now,
        )
    if outcome.resolved:
        await connection.execute(
            "UPDATE payments.pending_transfers p SET state = x.s, resolved_by = x.b, resolved_at = $4 "
            "FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS x(id, s, b) WHERE p.id = x.id",
            *_columns([(k, p.state, p.resolved_by) for k, p in outcome.resolved], 3),
            now,
        )
    if outcome.failed:
        await connection.execute(
            "INSERT INTO payments.failed_transfers (id, result, failed_at) "
            "SELECT id, r, $3 FROM unnest($1::uuid[], $2::text[]) AS x(id, r) ON CONFLICT (id) DO NOTHING",
            *_columns([(k, str(code)) for k, code in outcome.failed], 2),
            now,
        )
    return outcome.results


async def _write(
    connection: Connection,
    rows: list[TransferRow],
    deltas: dict[uuid.UUID, tuple[int, int, int, int]],
) -> None:
    if rows:
        if len(rows) >= 64:
            await connection.copy_records_to_table(
                "transfers", schema_name="payments", columns=TRANSFER_COLUMNS, records=rows
            )
        else:
            await connection.execute(
                sql.INSERT_TRANSFERS,
                *_columns(rows, len(TRANSFER_COLUMNS)),
            )
    if deltas:
        await connection.execute(
            "UPDATE payments.accounts a SET debits_pending = a.debits_pending + d.dp, "
            "debits_posted = a.debits_posted + d.dpo, credits_pending = a.credits_pending + d.cp, "
            "credits_posted = a.credits_posted + d.cpo "
            "FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) "
            "AS d(id, dp, dpo, cp, cpo) WHERE a.id = d.id",
            *_columns([(k, *v) for k, v in deltas.items()], 5),
        )


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(width)]
    for row in rows:
        for index, value in enumerate(row):
            columns[index].append(value)
    return columns


async def expire_pending(
    db: Pool | Connection, *, now: dt.datetime | None = None, limit: int = 10_000
) -> int:
    """Release reservations whose timeout has passed; returns how many expired."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection, connection.transaction():
            return await _expire_txn(connection, now, limit)
    async with db.transaction():
        return await _expire_txn(db, now, limit)


async def _expire_txn(connection: Connection, now: dt.datetime | None, limit: int) -> int:
    if now is None:
        now = await connection.fetchval("SELECT now()")
    due = await connection.fetch(
        "SELECT id, debit_account_id, credit_account_id FROM payments.pending_transfers "
        "WHERE state = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        now,
        limit,
    )
    if not due:
        return 0
    ids = {r["debit_account_id"] for r in due} | {r["credit_account_id"] for r in due}
    await connection.execute("SELECT pg_advisory_xact_lock_shared($1)", sql.WRITER_LOCK)
    await connection.execute(
        "SELECT 1 FROM payments.accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", list(ids)
    )
    count = await connection.fetchval(
        """
        WITH due AS (
            UPDATE payments.pending_transfers SET state = 'expired', resolved_at = $2
            WHERE id = ANY($1::uuid[]) AND state = 'pending'
            RETURNING debit_account_id, credit_account_id, amount
        ), parts AS (
            SELECT debit_account_id AS id, amount AS dp, 0::bigint AS cp FROM due
            UNION ALL SELECT credit_account_id, 0, amount FROM due
        ), agg AS (SELECT id, sum(dp)::bigint AS dp, sum(cp)::bigint AS cp FROM parts GROUP BY id),
        upd AS (
            UPDATE payments.accounts a SET debits_pending = a.debits_pending - agg.dp,
                credits_pending = a.credits_pending - agg.cp
            FROM agg WHERE a.id = agg.id RETURNING 1
        )
        SELECT count(*) FROM due
        """,
        [r["id"] for r in due],
        now,
    )
    return int(count)
