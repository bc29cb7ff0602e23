"""Accounts (created with their rules, never deleted) and reads of balances and transfers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from payments._db import Connection, Pool
from payments.ledger.snapshot import SELECT_ROW, TRANSFER_COLUMNS, TransferRow
from payments.ledger.types import Account, AccountFlags, AccountResult, Balance

__all__ = ["create_accounts", "create_accounts_txn", "lookup_balances", "lookup_transfers"]


async def create_accounts(db: Pool | Connection, accounts: Sequence[Account]) -> list[AccountResult]:
    """Create accounts; an existing id with the same fields is ``exists``."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection, connection.transaction():
            return await create_accounts_txn(connection, accounts)
    async with db.transaction():
        return await create_accounts_txn(db, accounts)


async def create_accounts_txn(connection: Connection, accounts: Sequence[Account]) -> list[AccountResult]:
    results: list[AccountResult] = []
    for a in accounts:
        if a.code <= 0:
            results.append(AccountResult.CODE_MUST_NOT_BE_ZERO)
            continue
        if a.ledger <= 0:
            results.append(AccountResult.LEDGER_MUST_NOT_BE_ZERO)
            continue
        both = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
        if a.flags & both == both:
            results.append(AccountResult.FLAGS_ARE_MUTUALLY_EXCLUSIVE)
            continue
        if a.overdraft_limit < 0:
            results.append(AccountResult.OVERDRAFT_LIMIT_MUST_NOT_BE_NEGATIVE)
            continue
        values = (
            a.id,
            a.ledger,
            a.code,
            int(a.flags),
            a.overdraft_limit,
            a.user_data_128,
            a.user_data_64,
            a.user_data_32,
            a.reference,
        )
        inserted = await connection.fetchval(
            "INSERT INTO payments.accounts (id, ledger, code, flags, overdraft_limit, user_data_128, "
            "user_data_64, user_data_32, reference) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT DO NOTHING RETURNING id",
            *values,
        )
        if inserted is not None:
            results.append(AccountResult.OK)
            continue
        row = await connection.fetchrow(
            "SELECT id, ledger, code, flags, overdraft_limit, user_data_128, user_data_64, user_data_32, "
            "reference FROM payments.accounts WHERE id = $1",
            a.id,
        )
        if row is None:
            results.append(AccountResult.REFERENCE_EXISTS)
        elif tuple(row.values()) == values:
            results.append(AccountResult.EXISTS)
        else:
            results.append(AccountResult.EXISTS_WITH_DIFFERENT_FIELDS)
    return results


async def lookup_balances(db: Pool | Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Balance]:
    rows = await db.fetch(
        "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted "
        "FROM payments.accounts WHERE id = ANY($1::uuid[])",
        list(ids),
    )
    return {
        r["id"]: Balance(
            account_id=r["id"],
            debits_pending=r["debits_pending"],
            debits_posted=r["debits_posted"],
            credits_pending=r["credits_pending"],
            credits_posted=r["credits_posted"],
        )
        for r in rows
    }


async def lookup_transfers(db: Pool | Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TransferRow]:
    rows = await db.fetch(
        f"SELECT {SELECT_ROW} FROM payments.transfers t WHERE t.id = ANY($1::uuid[])",  # noqa: S608
        list(ids),
    )
    return {r["id"]: TransferRow(*(r[c] for c in TRANSFER_COLUMNS)) for r in rows}
