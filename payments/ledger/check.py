"""``citizen ledger check``: recompute every balance from the transfers and compare.

Each check is one set-based query over the whole ledger and returns the first rows that break
it. The checks, in order:

1. every transfer names two existing, different accounts on its own ledger, with amount > 0;
2. every account's posted totals equal the sums of the posted transfers (plain and post) on it;
3. every account's pending totals equal the sums of its open reservations;
4. every pending transfer has exactly one reservation with the same accounts and amount, and
   every resolved reservation points at the one post/void transfer that resolved it (a post
   takes at most the reserved amount, a void exactly that amount); no post/void without one;
5. Σ debits = Σ credits, posted and pending separately;
6. every account's balance rule holds (pending debits counted), overdraft limit included.
"""

from __future__ import annotations

import asyncpg
import msgspec

from payments._db import Connection, Pool
from payments.ledger.types import AccountFlags, TransferFlags

__all__ = ["Discrepancy", "check_ledger"]

_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


class Discrepancy(msgspec.Struct, frozen=True):
    check: str
    detail: str


_CHECKS: tuple[tuple[str, str], ...] = (
    (
        "transfer-accounts",
        """SELECT 'transfer ' || t.id || ': ' || CASE
               WHEN d.id IS NULL THEN 'debit account ' || t.debit_account_id || ' does not exist'
               WHEN c.id IS NULL THEN 'credit account ' || t.credit_account_id || ' does not exist'
               WHEN t.debit_account_id = t.credit_account_id THEN 'debits and credits the same account'
               WHEN t.amount <= 0 THEN 'amount ' || t.amount || ' is not positive'
               ELSE 'ledger ' || t.ledger || ' differs from its accounts'' ' || d.ledger || '/' || c.ledger
           END
           FROM payments.transfers t
           LEFT JOIN payments.accounts d ON d.id = t.debit_account_id
           LEFT JOIN payments.accounts c ON c.id = t.credit_account_id
           WHERE d.id IS NULL OR c.id IS NULL OR t.debit_account_id = t.credit_account_id
              OR t.amount <= 0 OR d.ledger <> t.ledger OR c.ledger <> t.ledger
           LIMIT $1""",
    ),
    (
        "account-totals",
        f"""WITH posted AS (
               SELECT debit_account_id AS id, amount AS d, 0::bigint AS c FROM payments.transfers
               WHERE flags & {_PENDING | _VOID} = 0
               UNION ALL
               SELECT credit_account_id, 0, amount FROM payments.transfers
               WHERE flags & {_PENDING | _VOID} = 0
           ), reserved AS (
               SELECT debit_account_id AS id, amount AS d, 0::bigint AS c
               FROM payments.pending_transfers WHERE state = 'pending'
               UNION ALL
               SELECT credit_account_id, 0, amount FROM payments.pending_transfers WHERE state = 'pending'
           ), p AS (SELECT id, sum(d) AS d, sum(c) AS c FROM posted GROUP BY id),
           r AS (SELECT id, sum(d) AS d, sum(c) AS c FROM reserved GROUP BY id)
           SELECT 'account ' || a.id || ': totals (debits_posted, credits_posted, debits_pending, '
                  || 'credits_pending) are (' || a.debits_posted || ', ' || a.credits_posted || ', '
                  || a.debits_pending || ', ' || a.credits_pending || ') but its transfers sum to ('
                  || coalesce(p.d, 0) || ', ' || coalesce(p.c, 0) || ', ' || coalesce(r.d, 0) || ', '
                  || coalesce(r.c, 0) || ')'
           FROM payments.accounts a LEFT JOIN p ON p.id = a.id LEFT JOIN r ON r.id = a.id
           WHERE a.debits_posted <> coalesce(p.d, 0) OR a.credits_posted <> coalesce(p.c, 0)
              OR a.debits_pending <> coalesce(r.d, 0) OR a.credits_pending <> coalesce(r.c, 0)
           LIMIT $1""",  # noqa: S608 - integer flag constants only
    ),
    (
        "pending-transfers",
        f"""SELECT 'pending transfer ' || coalesce(t.id, pt.id) || ': ' || CASE
               WHEN pt.id IS NULL THEN 'has no reservation row'
               WHEN t.id IS NULL THEN 'reservation without a pending transfer'
               WHEN t.flags & {_PENDING} = 0 THEN 'reservation for a transfer that is not pending'
               ELSE 'reservation differs from its transfer (accounts or amount)'
           END
           FROM (SELECT * FROM payments.transfers WHERE flags & {_PENDING} <> 0) t
           FULL JOIN payments.pending_transfers pt ON pt.id = t.id
           WHERE t.id IS NULL OR pt.id IS NULL OR pt.amount <> t.amount
              OR pt.debit_account_id <> t.debit_account_id OR pt.credit_account_id <> t.credit_account_id
           LIMIT $1""",  # noqa: S608 - integer flag constants only
    ),
    (
        "pending-resolutions",
        f"""SELECT 'pending transfer ' || coalesce(pt.id, x.pending_id) || ': ' || CASE
               WHEN pt.id IS NULL THEN 'resolved by ' || x.id || ' but its reservation is open'
               WHEN x.id IS NULL THEN 'state ' || pt.state || ' but no post/void transfer resolves it'
               WHEN pt.resolved_by IS DISTINCT FROM x.id THEN 'resolved_by does not match ' || x.id
               WHEN x.flags & {_POST} <> 0 AND pt.state <> 'posted' THEN 'posted by ' || x.id
                    || ' but its state is ' || pt.state
               WHEN x.flags & {_VOID} <> 0 AND pt.state <> 'voided' THEN 'voided by ' || x.id
                    || ' but its state is ' || pt.state
               WHEN x.amount > pt.amount THEN 'resolved for ' || x.amount || ' > reserved ' || pt.amount
               WHEN x.flags & {_VOID} <> 0 THEN 'voided for ' || x.amount || ' <> reserved ' || pt.amount
               ELSE 'resolved with other accounts'
           END
           FROM (SELECT * FROM payments.pending_transfers WHERE state IN ('posted', 'voided')) pt
           FULL JOIN (SELECT * FROM payments.transfers WHERE pending_id IS NOT NULL) x
                ON x.pending_id = pt.id
           WHERE pt.id IS NULL OR x.id IS NULL OR pt.resolved_by IS DISTINCT FROM x.id
              OR (x.flags & {_POST} <> 0 AND pt.state <> 'posted')
              OR (x.flags & {_VOID} <> 0 AND pt.state <> 'voided')
              OR x.amount > pt.amount OR (x.flags & {_VOID} <> 0 AND x.amount <> pt.amount)
              OR x.debit_account_id <> pt.debit_account_id OR x.credit_account_id <> pt.credit_account_id
           LIMIT $1""",  # noqa: S608 - integer flag constants only
    ),
    (
        "double-entry",
        """SELECT 'sum of debits_posted ' || sum(debits_posted) || ' <> sum of credits_posted '
                  || sum(credits_posted) || ', or sum of debits_pending ' || sum(debits_pending)
                  || ' <> sum of credits_pending ' || sum(credits_pending)
           FROM payments.accounts
           HAVING sum(debits_posted) <> sum(credits_posted) OR sum(debits_pending) <> sum(credits_pending)
           LIMIT $1""",
    ),
    (
        "balance-rules",
        f"""SELECT 'account ' || id || ': ' || CASE
               WHEN flags & {_DMNEC} <> 0 THEN 'debits ' || (debits_pending + debits_posted)
                    || ' exceed credits ' || credits_posted || ' + overdraft ' || overdraft_limit
               ELSE 'credits ' || (credits_pending + credits_posted) || ' exceed debits ' || debits_posted
           END
           FROM payments.accounts
           WHERE (flags & {_DMNEC} <> 0
                  AND debits_pending + debits_posted > credits_posted + overdraft_limit)
              OR (flags & {_CMNED} <> 0 AND credits_pending + credits_posted > debits_posted)
           LIMIT $1""",  # noqa: S608 - integer flag constants only
    ),
)


async def check_ledger(db: Pool | Connection, *, limit: int = 10) -> list[Discrepancy]:
    """All checks on one snapshot (REPEATABLE READ); up to ``limit`` discrepancies per check."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as connection:
            return await _run(connection, limit)
    return await _run(db, limit)


async def _run(connection: Connection, limit: int) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        for name, sql in _CHECKS:
            found += [Discrepancy(name, row[0]) for row in await connection.fetch(sql, limit)]
    return found
