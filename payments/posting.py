"""Postings for the card and terminal domain: taps (purchases) and online loads into the ledger.

The interface the card helper calls (keep to it; everything else in ``payments`` may change):

- ``epurse_account_id(card_id)`` / ``operator_account_id(operator)``: the ledger account of a
  card's e-purse and of an operator's payable, as deterministic UUIDs (no lookup needed).
- ``open_epurse(db, card_id, overdraft_limit=…)`` and ``open_operator(db, operator)``: create
  them (idempotent; call when a card is issued or an operator is configured).
- ``post_purchases(db, purchases)``: one ledger batch debiting each card's e-purse and crediting
  the operator's payable. Idempotent per tap: the transfer id is ``transaction_key(card_id,
  counter, "purchase")``, so an upload of the same tap again returns ``exists`` (moves nothing),
  and the same (card, counter) with another amount returns ``exists_with_different_fields``.
- ``post_loads(db, loads)``: the same for online loads: debit the source (the channel clearing
  or top-up holding account the payments domain gives you), credit the e-purse.
- two-phase loads (reserved at the kiosk, then posted or voided) use the ledger's one-transfer
  calls: ``payments.ledger.reserve_call`` / ``resolve_call`` give the call of the database
  function (``payments.reserve_pending`` / ``resolve_pending``, migration 0004) as a SQL
  expression for the caller's own statement, ``refusal`` reads a refused one's result;
  ``reserve_pending_txn`` / ``resolve_pending_txn`` run them alone.

``db`` is a pool or a connection; with a connection the posting joins the caller's
transaction (a savepoint), so a tap's own row and its ledger transfer commit together.
A result with ``ok`` False moved no money: ``exceeds_credits`` means the e-purse would go below
its overdraft limit (a card that spent offline beyond it: deny-list it), and the other codes are
the ledger's (``payments.ledger.TransferResult``).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence

import msgspec

from payments._db import Connection, Pool
from payments.ledger import (
    Account,
    AccountCode,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferResult,
    create_accounts,
    create_transfers,
)

__all__ = [
    "TRANSFER_CODES",
    "LoadPosting",
    "PostingResult",
    "PurchasePosting",
    "epurse_account_id",
    "open_epurse",
    "open_operator",
    "operator_account_id",
    "post_loads",
    "post_purchases",
    "transaction_key",
]

_NAMESPACE = uuid.UUID("5b0c3f0e-6f1d-4c8e-9a57-2f1f6b8e1a01")  # payments postings, fixed forever

# Transfer codes (the ``code`` of a ledger transfer) used by postings.
TRANSFER_CODES = {"purchase": 1, "load": 2, "rebate": 3, "settlement": 4, "refund": 5, "topup": 6, "fee": 7}


def transaction_key(card_id: str, counter: int, kind: str) -> uuid.UUID:
    """The ledger transfer id of a card transaction: the same (card, counter, kind) → the same id."""
    return uuid.uuid5(_NAMESPACE, f"{kind}:{card_id}:{counter}")


def epurse_account_id(card_id: str) -> uuid.UUID:
    """The e-purse account of a card. For a card id that is a UUID (``card.cards.id``) this is
    ``uuid5(card_id, "epurse")``, the id card's ``PaymentsEpurseLedger`` opens at issuance, so
    postings by card id and the card's own ``card.epurses.ledger_account_id`` agree."""
    try:
        return uuid.uuid5(uuid.UUID(card_id), "epurse")
    except ValueError:
        return uuid.uuid5(_NAMESPACE, f"account:epurse:{card_id}")


@functools.lru_cache(maxsize=4096)
def operator_account_id(operator: str) -> uuid.UUID:
    # Cached: every tap of a batch posts to its operator's account, and a uuid5 (SHA-1 and a UUID
    # object) was 5 % of the gateway's CPU. A pure function of the name, and there are few operators.
    return uuid.uuid5(_NAMESPACE, f"account:operator-payable:{operator}")


async def open_epurse(db: Pool | Connection, card_id: str, *, overdraft_limit: int = 0) -> uuid.UUID:
    """Create the card's e-purse account (may not go below ``-overdraft_limit`` fen)."""
    account = Account(
        id=epurse_account_id(card_id),
        code=AccountCode.EPURSE,
        flags=int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        overdraft_limit=overdraft_limit,
        reference=f"epurse:{card_id}",
    )
    [result] = await create_accounts(db, [account])
    if result not in (AccountResult.OK, AccountResult.EXISTS):
        raise ValueError(f"e-purse for card {card_id}: {result}")
    return account.id


async def open_operator(db: Pool | Connection, operator: str) -> uuid.UUID:
    account = Account(
        id=operator_account_id(operator), code=AccountCode.OPERATOR_PAYABLE, reference=f"operator:{operator}"
    )
    [result] = await create_accounts(db, [account])
    if result not in (AccountResult.OK, AccountResult.EXISTS):
        raise ValueError(f"operator payable for {operator}: {result}")
    return account.id


class PurchasePosting(msgspec.Struct, frozen=True, kw_only=True):
    card_id: str
    counter: int  # the card's offline transaction counter of this purchase
    amount: int  # fen, > 0
    operator: str  # credited: operator_account_id(operator)
    occurred_at: dt.datetime  # the tap time (event time, signed by the card)
    terminal_id: str | None = None
    epurse_account_id: uuid.UUID | None = None  # debited; default epurse_account_id(card_id)


class LoadPosting(msgspec.Struct, frozen=True, kw_only=True):
    card_id: str
    counter: int  # the card's online transaction counter of this load
    amount: int  # fen, > 0
    source_account_id: uuid.UUID  # debited: where the paid top-up is held
    occurred_at: dt.datetime
    epurse_account_id: uuid.UUID | None = None  # credited; default epurse_account_id(card_id)


class PostingResult(msgspec.Struct, frozen=True):
    transfer_id: uuid.UUID
    result: TransferResult

    @property
    def ok(self) -> bool:
        """True when the money is in the ledger (created now, or by an earlier identical upload)."""
        return self.result.succeeded


def _millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


async def post_purchases(db: Pool | Connection, purchases: Sequence[PurchasePosting]) -> list[PostingResult]:
    transfers = [
        Transfer(
            id=transaction_key(p.card_id, p.counter, "purchase"),
            debit_account_id=p.epurse_account_id or epurse_account_id(p.card_id),
            credit_account_id=operator_account_id(p.operator),
            amount=p.amount,
            code=TRANSFER_CODES["purchase"],
            user_data_64=_millis(p.occurred_at),
            user_data_32=p.counter,
            reference=f"purchase:{p.card_id}:{p.counter}" + (f"@{p.terminal_id}" if p.terminal_id else ""),
        )
        for p in purchases
    ]
    results = await create_transfers(db, transfers)
    return [PostingResult(t.id, r) for t, r in zip(transfers, results, strict=True)]


async def post_loads(db: Pool | Connection, loads: Sequence[LoadPosting]) -> list[PostingResult]:
    transfers = [
        Transfer(
            id=transaction_key(x.card_id, x.counter, "load"),
            debit_account_id=x.source_account_id,
            credit_account_id=x.epurse_account_id or epurse_account_id(x.card_id),
            amount=x.amount,
            code=TRANSFER_CODES["load"],
            user_data_64=_millis(x.occurred_at),
            user_data_32=x.counter,
            reference=f"load:{x.card_id}:{x.counter}",
        )
        for x in loads
    ]
    results = await create_transfers(db, transfers)
    return [PostingResult(t.id, r) for t, r in zip(transfers, results, strict=True)]
