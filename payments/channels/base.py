"""What the top-up service needs from a payment channel, whatever its protocol.

A :class:`ChannelConnector` creates a payment for an order (the order number is the channel's
``out_trade_no``), queries and closes it, refunds and queries a refund (the refund number is the
channel's ``out_refund_no``, on which it deduplicates), downloads the day's statement, and turns an
asynchronous notification into :class:`Notified` only after verifying its signature (and, for
WeChat, decrypting it): :class:`ForgedNotification` otherwise. Every answer from a channel is
verified too; a bad one is a :class:`ChannelError`, never trusted data.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from payments.errors import PaymentsError

__all__ = [
    "ChannelConfig",
    "ChannelConnector",
    "ChannelError",
    "ChannelPayment",
    "ChannelStart",
    "ForgedNotification",
    "Notified",
    "PaymentStatus",
    "RefundStatus",
    "StatementEntry",
]


class ChannelError(PaymentsError):
    problem_type = "channel-unavailable"
    problem_title = "The payment channel did not answer as expected"
    problem_status = 502


class ForgedNotification(PaymentsError):
    problem_type = "notification-refused"
    problem_title = "The notification was refused"
    problem_status = 400


class PaymentStatus(enum.StrEnum):
    PAID = "paid"
    WAITING = "waiting"
    CLOSED = "closed"
    FAILED = "failed"
    NOT_FOUND = "not_found"


class RefundStatus(enum.StrEnum):
    """What a channel says of a refund. Only SUCCEEDED and REFUSED are definite: the money went
    back, or it never will under this refund number. PROCESSING (and a :class:`ChannelError`, no
    trustworthy answer at all) means ask again; NOT_FOUND (queries only) means the channel never
    got the request, so it can be sent again under the same number."""

    SUCCEEDED = "succeeded"
    REFUSED = "refused"
    PROCESSING = "processing"
    NOT_FOUND = "not_found"


class ChannelConfig(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    base_url: str
    credential: str  # the integrations credential the channel's keys derive from (development)
    timeout: float = 3.0


class ChannelStart(msgspec.Struct, frozen=True, kw_only=True):
    trade_no: str | None
    pay_url: str


class ChannelPayment(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    status: PaymentStatus
    amount: int | None = None
    trade_no: str | None = None


class Notified(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    trade_no: str
    amount: int  # fen, as the channel says it was paid
    status: PaymentStatus


class StatementEntry(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    trade_no: str
    kind: str  # "payment" or "refund"
    amount: int  # fen
    at: dt.datetime


class ChannelConnector(abc.ABC):
    name: str
    success_reply: tuple[int, bytes]  # what the channel must hear to stop retrying
    failure_reply: tuple[int, bytes]

    def __init__(self, config: ChannelConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client

    async def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        url = self.config.base_url + path
        try:
            return await self.client.post(url, timeout=self.config.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ChannelError(f"{self.name}: {type(exc).__name__}") from None

    async def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        url = self.config.base_url + path
        try:
            return await self.client.get(url, timeout=self.config.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise ChannelError(f"{self.name}: {type(exc).__name__}") from None

    @abc.abstractmethod
    async def create(self, order_no: str, amount: int, notify_url: str, subject: str) -> ChannelStart: ...

    @abc.abstractmethod
    async def query(self, order_no: str) -> ChannelPayment: ...

    @abc.abstractmethod
    async def close(self, order_no: str) -> bool: ...

    @abc.abstractmethod
    async def refund(self, order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
        """Ask for a refund (again, under the same ``refund_no``: the channel deduplicates on it).

        Never NOT_FOUND; a :class:`ChannelError` when the answer is missing or untrustworthy,
        which leaves the outcome unknown (the channel may have refunded)."""

    @abc.abstractmethod
    async def refund_query(self, order_no: str, refund_no: str) -> RefundStatus: ...

    @abc.abstractmethod
    async def statement(self, day: dt.date) -> list[StatementEntry]: ...

    @abc.abstractmethod
    def verify_notification(self, headers: Mapping[str, str], body: bytes) -> Notified: ...
