"""Large batches of plain transfers written ahead: the rows before the writer lock, then one
statement under it.

Most of the ledger's volume is plain transfers (taps, settlements): no flags, no pending id, no
timeout. Their rows are known before any rule runs (the transfers, stamped with the
transaction's now()), and writing them touches no account. So, in the batch's own transaction
and before it waits for the writer lock, ``written_ahead_txn``:

1. checks what it can from the transfers alone (plain, one ledger, ``code`` > 0, amounts in
   range, two different accounts, no id twice) and sums each account's debits and credits;
2. COPYs the rows (invisible to others until commit): an id that exists already, or is being
   written by another batch, fails the COPY on the primary key (the store then takes the usual
   way, which answers ``exists`` or the like);
3. takes the lock, looks for ids that failed before (they are not in the transfers' key), and
   applies the per-account totals in one statement (``sql.AHEAD_TOTALS``) that updates every
   account or none.

The statement applies the totals only when each account can take its whole total at once:
it exists, is on the ledger and open, stays within AMOUNT_MAX, and its balance rule holds for
the total. Debits and credits only grow during a batch of plain transfers, so then every
transfer passes its rules in order too (each one's position sees at most the totals), and the
result is ``ok`` for all, exactly what ``engine.evaluate`` would answer. Otherwise (a limit
reached part-way, an unknown account, anything unsure) it raises ``NotAhead``: the caller rolls
the attempt back and runs the batch the usual way, where ``evaluate`` decides transfer by
transfer. The lock is held for one statement instead of for reading, evaluating and inserting,
so batches waiting for it do their inserts in parallel.

Failed ids are looked for under the lock, so one that failed while this batch was waiting is
found too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from payments._db import Connection
from payments.ledger import copy, sql
from payments.ledger.types import AMOUNT_MAX, Transfer, TransferResult

__all__ = ["NotAhead", "written_ahead_txn"]


class NotAhead(Exception):
    """The batch cannot be written ahead, or not all of it would pass: take the usual way."""


def _totals(transfers: list[Transfer]) -> tuple[int, dict[object, int], dict[object, int]]:
    """The batch's ledger and each account's total debits and credits; NotAhead when a transfer
    is refused (or might be) on its own fields, or an id comes twice."""
    ledger = transfers[0].ledger
    debits: defaultdict[object, int] = defaultdict(int)
    credits: defaultdict[object, int] = defaultdict(int)
    for t in transfers:
        amount = t.amount
        if amount is None or not 0 < amount <= AMOUNT_MAX or t.code <= 0 or t.ledger != ledger:
            raise NotAhead
        if t.debit_account_id == t.credit_account_id:
            raise NotAhead
        debits[t.debit_account_id] += amount
        credits[t.credit_account_id] += amount
    if len({t.id for t in transfers}) != len(transfers):
        raise NotAhead
    return ledger, debits, credits


async def written_ahead_txn(
    connection: Connection, transfers: list[Transfer], now: dt.datetime | None
) -> list[TransferResult]:
    """All ``ok``, written; or ``NotAhead`` (after which the caller must roll back)."""
    stamp = now if now is not None else await connection.fetchval("SELECT now()")
    encoded = copy.encode(transfers, stamp)  # None unless every transfer is plain
    if encoded is None:
        raise NotAhead
    ledger, debits, credits = _totals(transfers)
    accounts = list(debits.keys() | credits.keys())
    deb = [debits.get(a, 0) for a in accounts]
    cred = [credits.get(a, 0) for a in accounts]
    if max(deb) > AMOUNT_MAX or max(cred) > AMOUNT_MAX:
        raise NotAhead  # a total beyond bigint: the usual way answers each transfer
    transfer_ids = [t.id for t in transfers]
    await connection.copy_to_table(
        "transfers",
        schema_name="payments",
        columns=copy.COLUMNS,
        source=copy.source(encoded),
        format="binary",
    )
    await connection.execute("SELECT pg_advisory_xact_lock($1)", sql.WRITER_LOCK)
    if await connection.fetchval(sql.ANY_FAILED, transfer_ids):
        raise NotAhead
    if await connection.fetchval(sql.AHEAD_TOTALS, accounts, deb, cred, ledger) != len(accounts):
        raise NotAhead
    return [TransferResult.OK] * len(transfers)
