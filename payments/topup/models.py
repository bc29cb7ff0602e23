"""Top-up wire types and errors (money in fen, times UTC)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from payments.errors import PaymentsError

__all__ = [
    "AmountRefused",
    "CardUnavailable",
    "CreateTopup",
    "HeldTopup",
    "OrderNotFound",
    "OrderStateConflict",
    "PayTopup",
    "PayingElsewhere",
    "RefundRequest",
    "RefundView",
    "TopupView",
    "UnknownChannel",
]


class AmountRefused(PaymentsError):
    problem_type = "amount-refused"
    problem_title = "The amount is not allowed"


class UnknownChannel(PaymentsError):
    problem_type = "unknown-channel"
    problem_title = "No such payment channel"


class CardUnavailable(PaymentsError):
    problem_type = "card-unavailable"
    problem_title = "No card that can be topped up"
    problem_status = 409


class OrderNotFound(PaymentsError):
    problem_type = "topup-not-found"
    problem_title = "No such top-up order"
    problem_status = 404


class OrderStateConflict(PaymentsError):
    problem_type = "topup-state-conflict"
    problem_title = "The order is not in a state that allows this"
    problem_status = 409


class PayingElsewhere(OrderStateConflict):
    """One order, one channel: a second channel could take the citizen's money a second time."""

    problem_type = "topup-paying-elsewhere"
    problem_title = "The order is being paid through another channel"


class CreateTopup(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int  # fen
    channel: str | None = None


class PayTopup(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    channel: str


class RefundRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    amount: int | None = None  # fen; None: everything not yet refunded
    reason: str = "requested by the citizen"


class TopupView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    order_no: str
    card_id: uuid.UUID
    amount: int
    channel: str | None
    state: str
    pay_url: str | None
    refunded_amount: int
    created_at: dt.datetime
    expires_at: dt.datetime
    paid_at: dt.datetime | None
    credited_at: dt.datetime | None
    failure: str | None


class RefundView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    refund_no: str
    order_id: uuid.UUID
    amount: int
    state: str


class HeldTopup(msgspec.Struct, frozen=True, kw_only=True):
    """A paid top-up of a physical card waiting for a kiosk (see ``payments.topup.kiosk``)."""

    order_id: uuid.UUID
    card_id: uuid.UUID
    amount: int
    source_account_id: uuid.UUID  # debit this account in the load's pending transfer
    epurse_account_id: uuid.UUID
