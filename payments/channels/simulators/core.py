"""What the three channel simulators share: the order book, the notifier, the statement, faults.

Each channel's book lives in the framework's ``UpstreamState.store`` (so the framework's reset
forgets it). Beside the framework's own controls each channel serves, under
``/<channel>/_control``:

- ``POST /pay/{order_no}``: the customer pays (``{"fail": true}``: the payment fails); the
  channel then sends its asynchronous notification to the order's notify URL;
- ``GET|POST /channel``: the channel's own faults (:class:`ChannelFaults`): notifications dropped
  or duplicated, retry delays, and the statement fault mode planting mismatches: ``drop``
  (a paid order missing from the statement: platform-only), ``extra`` (a payment we never
  ordered: channel-only), ``amount`` (a paid order with another amount);
- ``GET /notifications``: every notification built so far, with its delivery attempts (tests
  replay them when the app is not reachable over HTTP);
- ``POST /refunds/{refund_no}`` ``{"status": "SUCCESS"|"CLOSED"}``: the channel finishes a refund
  it answered as still processing (the ``refunds_processing`` fault), or gives it up.

Refunds are deduplicated on the refund number, as the real channels do: the same number again
answers the first request's outcome and moves nothing more.

Notifications are retried at ``notify_delays`` seconds until the app answers the channel's
success token (like Alipay's ``success`` and WeChat's 2xx).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import msgspec
from litestar import Router, get, post
from litestar.params import FromPath, JSONBody

from integrations.simulators.faults import UpstreamState

__all__ = [
    "CHINA",
    "Book",
    "ChannelFaults",
    "Delivery",
    "SimOrder",
    "StatementLine",
    "book_of",
    "channel_controls",
    "find_refund",
    "statement_lines",
    "take_refund",
]

CHINA = dt.timezone(dt.timedelta(hours=8))


class SimOrder(msgspec.Struct, kw_only=True):
    order_no: str
    trade_no: str
    amount: int  # fen
    notify_url: str
    status: str = "WAITING"  # WAITING, SUCCESS, FAILED, CLOSED
    created_at: dt.datetime
    paid_at: dt.datetime | None = None
    refunded: dict[str, int] = msgspec.field(default_factory=dict)  # refund_no -> fen
    refunded_at: dict[str, dt.datetime] = msgspec.field(default_factory=dict)
    # refund_no -> SUCCESS, PROCESSING or CLOSED; ``refunded`` holds the amounts not CLOSED.
    refund_states: dict[str, str] = msgspec.field(default_factory=dict)


class ChannelFaults(msgspec.Struct, kw_only=True):
    drop_notifications: bool = False
    duplicate_notifications: int = 0  # extra copies of each notification
    notify_delays: list[float] = msgspec.field(default_factory=lambda: [0.0, 0.2, 0.5, 1.0, 2.0, 5.0])
    drop: int = 0  # statement: paid orders left out
    extra: int = 0  # statement: payments added that no one ordered
    amount: int = 0  # statement: paid orders with the amount changed by +1 yuan
    refunds_processing: int = 0  # the next refunds stay PROCESSING until /_control/refunds settles them


class FaultsPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    drop_notifications: bool | None = None
    duplicate_notifications: int | None = None
    notify_delays: list[float] | None = None
    drop: int | None = None
    extra: int | None = None
    amount: int | None = None
    refunds_processing: int | None = None


class Delivery(msgspec.Struct, kw_only=True):
    order_no: str
    url: str
    headers: dict[str, str]
    body: str
    attempts: list[int] = msgspec.field(default_factory=list)  # HTTP status, or 0 when unreachable
    delivered: bool = False


class Book:
    def __init__(self) -> None:
        self.orders: dict[str, SimOrder] = {}
        self.faults = ChannelFaults()
        self.deliveries: list[Delivery] = []
        self.tasks: set[asyncio.Task[None]] = set()

    def new_trade_no(self, prefix: str) -> str:
        return prefix + dt.datetime.now(CHINA).strftime("%Y%m%d") + secrets.token_hex(6).upper()


def book_of(state: UpstreamState) -> Book:
    book = state.store.get("book")
    if not isinstance(book, Book):
        book = state.store["book"] = Book()
    return book


class StatementLine(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    trade_no: str
    kind: str  # "payment" or "refund"
    amount: int  # fen
    at: dt.datetime


def statement_lines(book: Book, day: dt.date) -> list[StatementLine]:
    """The day's (China time) payments and refunds, with the statement faults applied."""
    payments = sorted(
        (o for o in book.orders.values() if o.paid_at and o.paid_at.astimezone(CHINA).date() == day),
        key=lambda o: o.order_no,
    )
    lines = [
        StatementLine(order_no=o.order_no, trade_no=o.trade_no, kind="payment", amount=o.amount, at=o.paid_at)
        for o in payments
        if o.paid_at is not None
    ]
    faults = book.faults
    lines = lines[faults.drop :]
    lines = [
        msgspec.structs.replace(line, amount=line.amount + 100) if i < faults.amount else line
        for i, line in enumerate(lines)
    ]
    noon = dt.datetime.combine(day, dt.time(12), CHINA)
    lines += [
        StatementLine(
            order_no=f"X{day:%Y%m%d}{i:04d}", trade_no=f"EXTRA{day:%Y%m%d}{i:04d}", kind="payment",
            amount=1234, at=noon,
        )
        for i in range(faults.extra)
    ]  # fmt: skip
    for order in book.orders.values():
        for refund_no, amount in order.refunded.items():
            if order.refund_states.get(refund_no, "SUCCESS") != "SUCCESS":
                continue  # money not (yet) sent back
            at = order.refunded_at[refund_no]
            if at.astimezone(CHINA).date() == day:
                lines.append(
                    StatementLine(
                        order_no=order.order_no, trade_no=refund_no, kind="refund", amount=amount, at=at
                    )
                )
    return lines


def take_refund(book: Book, order: SimOrder, refund_no: str, amount: int | None) -> str | None:
    """The refund's state (SUCCESS, PROCESSING, CLOSED) after this request; ``None``: refused.

    A refund number seen before answers its state as it is (another amount is refused)."""
    if refund_no in order.refund_states:
        same = order.refunded.get(refund_no, amount) == amount
        return order.refund_states[refund_no] if same else None
    left = order.amount - sum(order.refunded.values())
    if order.status != "SUCCESS" or amount is None or not refund_no or not 0 < amount <= left:
        return None
    processing = book.faults.refunds_processing > 0
    if processing:
        book.faults.refunds_processing -= 1
    order.refunded[refund_no] = amount
    order.refunded_at[refund_no] = dt.datetime.now(dt.UTC)
    order.refund_states[refund_no] = "PROCESSING" if processing else "SUCCESS"
    return order.refund_states[refund_no]


def find_refund(book: Book, refund_no: str) -> tuple[SimOrder, str] | None:
    """The order a refund number belongs to, and the refund's state."""
    for order in book.orders.values():
        if refund_no in order.refund_states:
            return order, order.refund_states[refund_no]
    return None


Deliverer = Callable[[SimOrder], Delivery]
Accepted = Callable[[httpx.Response], bool]


async def _deliver(book: Book, delivery: Delivery, accepted: Accepted) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        for delay in book.faults.notify_delays:
            await asyncio.sleep(delay)
            try:
                response = await client.post(delivery.url, content=delivery.body, headers=delivery.headers)
            except httpx.HTTPError:
                delivery.attempts.append(0)
                continue
            delivery.attempts.append(response.status_code)
            if accepted(response):
                delivery.delivered = True
                return


def notify(book: Book, order: SimOrder, build: Deliverer, accepted: Accepted) -> None:
    """Queue the order's notification (and any duplicates) for delivery with retries."""
    copies = 0 if book.faults.drop_notifications else 1 + book.faults.duplicate_notifications
    for _ in range(copies):
        delivery = build(order)
        book.deliveries.append(delivery)
        if not delivery.url.startswith(("http://", "https://")):
            continue
        task = asyncio.get_running_loop().create_task(_deliver(book, delivery, accepted))
        book.tasks.add(task)
        task.add_done_callback(book.tasks.discard)


class PayAction(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    fail: bool = False


class RefundAction(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: str  # SUCCESS or CLOSED


def channel_controls(
    name: str, state: UpstreamState, on_paid: Callable[[Book, SimOrder], Awaitable[None] | None]
) -> Router:
    @post("/pay/{order_no:str}", operation_id=f"SimPay_{name}", status_code=200)
    async def pay(order_no: FromPath[str], data: JSONBody[PayAction] | None = None) -> dict[str, Any]:
        book = book_of(state)
        order = book.orders.get(order_no)
        if order is None:
            return {"ok": False, "error": "no such order"}
        if order.status == "WAITING":
            failed = data is not None and data.fail
            order.status = "FAILED" if failed else "SUCCESS"
            order.paid_at = None if failed else dt.datetime.now(dt.UTC)
            result = on_paid(book, order)
            if result is not None:
                await result
        return {"ok": True, "status": order.status, "trade_no": order.trade_no}

    @get("/channel", operation_id=f"SimFaults_{name}")
    async def faults() -> ChannelFaults:
        return book_of(state).faults

    @post("/channel", operation_id=f"SimSetFaults_{name}", status_code=200)
    async def set_faults(data: JSONBody[FaultsPatch]) -> ChannelFaults:
        book = book_of(state)
        changes = {f: v for f in data.__struct_fields__ if (v := getattr(data, f)) is not None}
        book.faults = msgspec.structs.replace(book.faults, **changes)
        return book.faults

    @get("/notifications", operation_id=f"SimNotifications_{name}")
    async def deliveries() -> list[Delivery]:
        return book_of(state).deliveries

    @post("/refunds/{refund_no:str}", operation_id=f"SimSettleRefund_{name}", status_code=200)
    async def settle_refund(refund_no: FromPath[str], data: JSONBody[RefundAction]) -> dict[str, Any]:
        found = find_refund(book_of(state), refund_no)
        if found is None or found[1] != "PROCESSING" or data.status not in ("SUCCESS", "CLOSED"):
            return {"ok": False, "error": "no such refund processing, or an unknown status"}
        order = found[0]
        order.refund_states[refund_no] = data.status
        if data.status == "CLOSED":  # given up: the money stays with the merchant
            del order.refunded[refund_no]
        else:
            order.refunded_at[refund_no] = dt.datetime.now(dt.UTC)
        return {"ok": True, "status": data.status}

    return Router("/_control", route_handlers=[pay, faults, set_faults, deliveries, settle_refund])
