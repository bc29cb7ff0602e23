"""One two-phase transfer at a time, in one statement: a reservation, or its post or void.

``create_transfers_txn`` runs seven to nine statements for a batch of one (the writer lock, the
account locks, the id lookup, the reservation's rows, then one write per table): right for
batches, heavy for a caller that reserves one transfer per request and resolves it in the next
(a kiosk load). ``reserve_pending_txn`` and ``resolve_pending_txn`` do the same for that one
transfer with one call of a database function (``payments.reserve_pending`` /
``payments.resolve_pending``, migration 0004): the same locks in the same order (the ledger's
writer lock shared, the accounts in id order, then the reservation's row), the engine's rules
in the engine's order, and the same rows written, so a transfer gets the same result and leaves
the same rows whichever way it goes (``tests/payments/test_ledger_pending.py``).

The functions implement only the transfers whose own fields pass the engine's field checks
(flags exactly PENDING, or exactly POST or VOID with a pending id, a positive code, amounts and
numbers within their columns…); any other transfer is sent the general way, which answers it.

``reserve_call`` / ``resolve_call`` give the function call as a SQL expression with its
arguments, for a caller that puts it in a statement of its own (its own row and the
reservation in one round trip). With ``refuse=True`` a result other than ``ok``/``exists``
raises (``refusal`` reads the result back from the exception), so the caller's statement, run
alone, rolls back whole, as a transaction would on the caller's error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from payments._db import Connection
from payments.ledger.store import create_transfers_txn
from payments.ledger.types import AMOUNT_MAX, Transfer, TransferFlags, TransferResult

__all__ = [
    "LEDGER_REFUSED",
    "LedgerCall",
    "refusal",
    "reserve_call",
    "reserve_pending_txn",
    "resolve_call",
    "resolve_pending_txn",
]

LEDGER_REFUSED = "LR001"  # the SQLSTATE the functions raise with refuse=True; the result is the message
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_INT4 = 2**31 - 1
_INT8 = 2**63 - 1


class LedgerCall(NamedTuple):
    sql: str  # an expression giving the result's text, e.g. "payments.reserve_pending($3::uuid, …)"
    args: tuple[Any, ...]  # the arguments of its placeholders, in order


def _within(value: int | None, limit: int) -> bool:
    return value is None or -limit - 1 <= value <= limit


def _common(t: Transfer) -> bool:
    """The field checks both functions leave to Python (the engine's, and the columns' ranges)."""
    return (
        0 < t.code <= _INT4
        and _within(t.ledger, _INT4)
        and _within(t.user_data_64, _INT8)
        and _within(t.user_data_32, _INT4)
    )


def _call(function: str, casts: tuple[str, ...], args: tuple[Any, ...], first: int) -> LedgerCall:
    params = ", ".join(f"${first + i}::{cast}" for i, cast in enumerate(casts))
    return LedgerCall(f"payments.{function}({params})", args)


_RESERVE_CASTS = ("uuid", "uuid", "uuid", "bigint", "int", "int", "int", "uuid", "bigint", "int")
_RESOLVE_CASTS = ("uuid", "uuid", "boolean", "uuid", "uuid", "bigint", "int", "int", "uuid", "bigint", "int")
_TAIL = ("text", "timestamptz", "boolean")  # reference, now, refuse


def reserve_call(
    t: Transfer, *, first: int = 1, refuse: bool = False, now: dt.datetime | None = None
) -> LedgerCall | None:
    """The call reserving ``t`` (placeholders from ``$first``), or None: not a transfer it takes."""
    amount = t.amount
    if not (
        t.flags == _PENDING
        and t.pending_id is None
        and _common(t)
        and 0 <= t.timeout <= _INT4
        and t.debit_account_id is not None
        and t.credit_account_id is not None
        and t.debit_account_id != t.credit_account_id
        and amount is not None
        and 0 < amount <= AMOUNT_MAX
    ):
        return None
    args = (
        t.id, t.debit_account_id, t.credit_account_id, amount, t.ledger, t.code, t.timeout,
        t.user_data_128, t.user_data_64, t.user_data_32, t.reference, now, refuse,
    )  # fmt: skip
    return _call("reserve_pending", _RESERVE_CASTS + _TAIL, args, first)


def resolve_call(
    t: Transfer, *, first: int = 1, refuse: bool = False, now: dt.datetime | None = None
) -> LedgerCall | None:
    """The call posting or voiding ``t.pending_id`` as ``t`` says, or None: not a transfer it takes."""
    if not (
        t.flags in (_POST, _VOID)
        and t.pending_id is not None
        and t.pending_id != t.id
        and t.timeout == 0
        and _common(t)
        and _within(t.amount, _INT8)
    ):
        return None
    args = (
        t.id, t.pending_id, t.flags == _POST, t.debit_account_id, t.credit_account_id, t.amount,
        t.ledger, t.code, t.user_data_128, t.user_data_64, t.user_data_32, t.reference, now, refuse,
    )  # fmt: skip
    return _call("resolve_pending", _RESOLVE_CASTS + _TAIL, args, first)


async def reserve_pending_txn(
    connection: Connection, transfer: Transfer, *, now: dt.datetime | None = None
) -> TransferResult:
    """``create_transfers_txn(connection, [transfer])``'s result and rows, in one statement when
    ``transfer`` is a reservation the function takes (``now`` overrides the clock, for tests)."""
    return await _single(connection, transfer, reserve_call(transfer, now=now), now)


async def resolve_pending_txn(
    connection: Connection, transfer: Transfer, *, now: dt.datetime | None = None
) -> TransferResult:
    """The same for a post or void of one pending transfer (``transfer.pending_id``)."""
    return await _single(connection, transfer, resolve_call(transfer, now=now), now)


async def _single(
    connection: Connection, transfer: Transfer, call: LedgerCall | None, now: dt.datetime | None
) -> TransferResult:
    if call is None:
        [result] = await create_transfers_txn(connection, [transfer], now=now)
        return result
    return TransferResult(await connection.fetchval(f"SELECT {call.sql}", *call.args))


def refusal(exc: BaseException) -> TransferResult | None:
    """The ledger's result when ``exc`` is a refused ``refuse=True`` call, else None."""
    if getattr(exc, "sqlstate", None) != LEDGER_REFUSED:
        return None
    return TransferResult(str(getattr(exc, "message", "")))
