"""What the ledger's rules work on: the locked snapshot of one batch, and what they return.

The store reads the accounts involved, the ids that already exist or failed and the pending
transfers referenced (``AccountState``, ``TransferRow``, ``PendingState``); ``engine.evaluate``
changes that snapshot in place, through ``Run`` (which can undo a linked chain), and returns a
``BatchOutcome``: the rows and totals the store writes back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import NamedTuple

from payments.ledger.types import TransferResult

__all__ = [
    "SELECT_ROW",
    "TRANSFER_COLUMNS",
    "AccountState",
    "BatchOutcome",
    "PendingState",
    "Run",
    "TransferRow",
]


@dataclass(slots=True)
class AccountState:
    ledger: int
    flags: int
    overdraft_limit: int
    balances: list[int]  # [debits_pending, debits_posted, credits_pending, credits_posted]


@dataclass(slots=True)
class PendingState:
    """A two-phase transfer's reservation (immutable part from its transfer row, plus its state)."""

    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    ledger: int
    code: int
    is_pending: bool  # the referenced transfer really has the PENDING flag
    expires_at: dt.datetime | None
    state: str  # 'pending' | 'posted' | 'voided' | 'expired'
    resolved_by: uuid.UUID | None = None


class TransferRow(NamedTuple):
    """A transfer as stored (the column order of ``payments.transfers``)."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    pending_id: uuid.UUID | None
    ledger: int
    code: int
    flags: int
    timeout: int
    user_data_128: uuid.UUID | None
    user_data_64: int | None
    user_data_32: int | None
    reference: str | None
    timestamp: dt.datetime


TRANSFER_COLUMNS = TransferRow._fields
# The columns of ``payments.transfers t`` in ``TransferRow``'s order, for SELECTs.
SELECT_ROW = ", ".join(f"t.{name}" for name in TRANSFER_COLUMNS)


@dataclass(slots=True)
class BatchOutcome:
    results: list[TransferResult]
    rows: list[TransferRow]
    deltas: dict[uuid.UUID, tuple[int, int, int, int]]
    new_pending: list[tuple[uuid.UUID, PendingState]]
    resolved: list[tuple[uuid.UUID, PendingState]]  # state changed (posted/voided/expired)
    failed: list[tuple[uuid.UUID, TransferResult]]


@dataclass(slots=True)
class Run:
    """The snapshot while a batch is evaluated. Inside a linked chain (``undo`` set) every change
    is recorded so that the chain can be taken back as a whole when one of its transfers fails."""

    accounts: dict[uuid.UUID, AccountState]
    existing: dict[uuid.UUID, TransferRow]
    failed: dict[uuid.UUID, str]
    pending: dict[uuid.UUID, PendingState]
    now: dt.datetime
    applied: dict[uuid.UUID, TransferRow] = field(default_factory=dict)
    new_failed: dict[uuid.UUID, TransferResult] = field(default_factory=dict)
    undo: list[tuple[str, uuid.UUID, object]] | None = None

    def set_balances(self, account_id: uuid.UUID, values: list[int]) -> None:
        account = self.accounts[account_id]
        if self.undo is not None:
            self.undo.append(("balance", account_id, account.balances))
        account.balances = values

    def set_pending_state(self, pending_id: uuid.UUID, state: str, by: uuid.UUID | None) -> None:
        pending = self.pending[pending_id]
        if self.undo is not None:
            self.undo.append(("state", pending_id, (pending.state, pending.resolved_by)))
        pending.state, pending.resolved_by = state, by

    def add_pending(self, pending_id: uuid.UUID, pending: PendingState) -> None:
        if self.undo is not None:
            self.undo.append(("new_pending", pending_id, None))
        self.pending[pending_id] = pending

    def add_row(self, row: TransferRow) -> None:
        if self.undo is not None:
            self.undo.append(("row", row.id, None))
        self.applied[row.id] = row

    def rollback(self, undo: list[tuple[str, uuid.UUID, object]]) -> None:
        for kind, key, old in reversed(undo):
            if kind == "balance":
                assert isinstance(old, list)
                self.accounts[key].balances = old
            elif kind == "state":
                assert isinstance(old, tuple)
                self.pending[key].state, self.pending[key].resolved_by = old
            elif kind == "new_pending":
                del self.pending[key]
            else:
                del self.applied[key]
