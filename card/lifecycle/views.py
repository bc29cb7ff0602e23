"""Response types of the card API (frozen msgspec Structs; money in fen, times UTC)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

__all__ = [
    "ApplicationView",
    "BalanceRefund",
    "CardSummary",
    "CardView",
    "DeviceView",
    "EpurseView",
    "LifecycleEvent",
    "RefundLine",
]


class ApplicationView(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    status: str
    attributes: dict[str, Any]


class EpurseView(msgspec.Struct, frozen=True, kw_only=True):
    balance: int | None  # fen, from the payments ledger; None when no ledger account is linked
    offline_counter: int
    online_counter: int
    overdraft_limit: int
    concession: int
    key_version: int


class DeviceView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    label: str | None
    bound_at: dt.datetime
    authorisation_expires_at: dt.datetime


class RefundLine(msgspec.Struct, frozen=True, kw_only=True):
    """One refund to the channel a top-up was paid through (payments' ``RefundView``)."""

    refund_no: str
    order_id: uuid.UUID
    amount: int  # fen
    state: str  # succeeded / failed


class BalanceRefund(msgspec.Struct, frozen=True, kw_only=True):
    """What closing the card did with its e-purse balance (fen)."""

    balance: int  # available when the refund ran
    refunded: int  # given back to the channels of the card's top-ups
    unrefunded: int  # for the card desk to pay out: cash loads, refunds a channel refused
    refunds: list[RefundLine]
    error: str | None = None  # the refund stopped: ``unrefunded`` is what the purse still holds


class CardView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    card_number: str
    status: str
    issued_on: dt.date
    expires_on: dt.date
    physical: bool
    replaces_id: uuid.UUID | None
    applications: list[ApplicationView]
    epurse: EpurseView | None
    device: DeviceView | None
    # While frozen: "holder" (the holder may unfreeze it) or "operator" (only the card service may).
    frozen_by: str | None = None
    physical_request: str | None = None  # status of the open request, if any
    balance_transfer: str | None = None  # "scheduled"/"done" after a reissue
    # After closing: "scheduled" (until ``refund_due_at``, the end of the offline settlement
    # window), "running", "done" (``refund``: what it did).
    balance_refund: str | None = None
    refund_due_at: dt.datetime | None = None
    refund: BalanceRefund | None = None


class CardSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    card_number: str
    holder_id: uuid.UUID
    status: str
    issued_on: dt.date
    status_changed_at: dt.datetime


class LifecycleEvent(msgspec.Struct, frozen=True, kw_only=True):
    occurred_at: dt.datetime
    action: str
    from_status: str | None
    to_status: str
    actor_kind: str
    actor_id: str | None
    details: dict[str, Any]
