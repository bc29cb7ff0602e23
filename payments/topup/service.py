"""The top-up service: create, pay, notifications, and what the API and the jobs call.

No pooled connection is held across a call to a channel: each step is its own transaction.
Every money-moving action and every refusal is audited (identity's chain) in its transaction.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from payments import audit as payments_audit
from payments._db import Connection, Pool
from payments.audit import Actor
from payments.channels import ChannelConnector, ChannelError, ForgedNotification, PaymentStatus
from payments.settings import PaymentsSettings
from payments.topup import idempotency, orders
from payments.topup.models import (
    AmountRefused,
    CardUnavailable,
    CreateTopup,
    OrderNotFound,
    OrderStateConflict,
    PayingElsewhere,
    TopupView,
    UnknownChannel,
)

__all__ = ["Actor", "TopupService"]


SYSTEM = Actor(kind="system", id="payments")
# A notification's outcome (payments.channel_notifications.outcome) and how it is audited: the
# applied ones by the move itself (topup.paid); verified news that the order is closed or still
# waiting was accepted (success); everything else was refused (denied).
_AUDITED_ELSEWHERE = frozenset({"applied", "duplicate", "failed"})
_ACCEPTED = frozenset({"closed", "waiting"})


async def audit_txn(  # noqa: PLR0917 - one audit event
    connection: Connection,
    actor: Actor,
    action: str,
    target: str | None,
    details: dict[str, Any],
    outcome: Literal["success", "failure", "denied"] = "success",
) -> None:
    """Record ``payments.<action>`` on the top-up order ``target`` (None: no order yet)."""
    await payments_audit.audit_txn(
        connection, actor, action, ("topup", target) if target else None, details, outcome
    )


class TopupService:
    def __init__(
        self,
        pool: Pool,
        settings: PaymentsSettings,
        connectors: Mapping[str, ChannelConnector],
        notify_base_url: str,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.connectors = dict(connectors)
        self.notify_base_url = notify_base_url.rstrip("/")

    def notify_url(self, channel: str) -> str:
        return f"{self.notify_base_url}/api/v1/payments/notify/{channel}"

    # --- refusals are recorded too -------------------------------------------------------------

    async def refuse(self, actor: Actor, action: str, target: str | None, error: Exception) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            await audit_txn(connection, actor, action, target, {"refused": str(error)[:200]}, "denied")

    def _channel(self, name: str | None) -> ChannelConnector:
        if name is None or name not in self.connectors:
            raise UnknownChannel(
                f"unknown payment channel {name!r}; available: {', '.join(sorted(self.connectors))}"
            )
        return self.connectors[name]

    # --- the citizen's orders ------------------------------------------------------------------

    async def _checked_card(self, person_id: uuid.UUID, data: CreateTopup) -> Any:
        if data.amount <= 0:
            raise AmountRefused(f"the amount must be positive, got {data.amount} fen")
        if not self.settings.topup_min <= data.amount <= self.settings.topup_max:
            raise AmountRefused(
                f"a top-up is between {self.settings.topup_min} and {self.settings.topup_max} fen"
            )
        if data.channel is not None:
            self._channel(data.channel)
        card = await self.pool.fetchrow(
            "SELECT c.id, c.physical, e.ledger_account_id FROM card.cards c "
            "JOIN card.epurses e ON e.card_id = c.id WHERE c.holder_id = $1 AND c.status = 'active'",
            person_id,
        )
        if card is None or card["ledger_account_id"] is None:
            raise CardUnavailable("you have no active card with an e-purse to top up")
        return card

    async def create(
        self, person_id: uuid.UUID, data: CreateTopup, actor: Actor, *, claim: idempotency.Claim | None = None
    ) -> TopupView:
        try:
            card = await self._checked_card(person_id, data)
        except (AmountRefused, UnknownChannel, CardUnavailable) as exc:
            await self.refuse(actor, "topup.create", None, exc)
            raise
        order_id = uuid.uuid4()
        now = dt.datetime.now(dt.UTC)
        order_no = f"TU{now:%Y%m%d}{secrets.token_hex(6).upper()}"
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "INSERT INTO payments.topup_orders (id, order_no, person_id, card_id, epurse_account_id, "
                "physical, amount, channel, state, created_at, updated_at, expires_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'created', $9, $9, $10) RETURNING *",
                order_id,
                order_no,
                person_id,
                card["id"],
                card["ledger_account_id"],
                card["physical"],
                data.amount,
                data.channel,
                now,
                now + dt.timedelta(seconds=self.settings.order_ttl),
            )
            assert row is not None
            await orders.record_event_txn(connection, order_id, None, "created", "created by the citizen")
            await audit_txn(connection, actor, "topup.create", str(order_id), {"amount": data.amount})
            view = orders.view(row)
            if claim is not None:  # a retry after a crash finds this order, not a second one
                await claim.store_txn(connection, view)
        return view

    async def _own(self, person_id: uuid.UUID | None, order_id: uuid.UUID) -> Any:
        row = await orders.load_txn(self.pool, order_id)  # type: ignore[arg-type]
        if row is None or (person_id is not None and row["person_id"] != person_id):
            raise OrderNotFound(f"no top-up order {order_id}")
        return row

    async def get(self, person_id: uuid.UUID | None, order_id: uuid.UUID) -> TopupView:
        return orders.view(await self._own(person_id, order_id))

    async def list_for(self, person_id: uuid.UUID) -> list[TopupView]:
        rows = await self.pool.fetch(
            "SELECT * FROM payments.topup_orders WHERE person_id = $1 ORDER BY created_at DESC LIMIT 50",
            person_id,
        )
        return [orders.view(r) for r in rows]

    async def pay(
        self, person_id: uuid.UUID | None, order_id: uuid.UUID, channel: str, actor: Actor
    ) -> TopupView:
        order = await self._own(person_id, order_id)
        try:
            connector = self._channel(channel)
        except UnknownChannel as exc:
            await self.refuse(actor, "topup.pay", str(order_id), exc)
            raise
        async with self.pool.acquire() as connection, connection.transaction():
            # Locked, and checked on the locked row: two /pay calls at once take turns, and the
            # second one through another channel is refused instead of overwriting the first.
            locked = await orders.load_txn(connection, order_id, lock=True)
            assert locked is not None
            error: OrderStateConflict | None = None
            if locked["channel"] not in (None, channel):
                error = PayingElsewhere(f"the order is already being paid through {locked['channel']}")
            elif locked["state"] not in ("created", "paying"):
                error = OrderStateConflict(f"the order is {locked['state']}; it cannot be paid now")
            else:
                await orders.transition_txn(
                    connection,
                    order_id,
                    ("created", "paying"),
                    "paying",
                    f"pay through {channel}",
                    channel=channel,
                )
                await audit_txn(connection, actor, "topup.pay", str(order_id), {"channel": channel})
        if error is not None:
            await self.refuse(actor, "topup.pay", str(order_id), error)
            raise error
        start = await connector.create(
            order["order_no"], int(order["amount"]), self.notify_url(channel),
            "citizen card top-up",
        )  # fmt: skip
        async with self.pool.acquire() as connection:
            row = await connection.fetchrow(
                "UPDATE payments.topup_orders SET pay_url = $2, "
                "channel_trade_no = coalesce(channel_trade_no, $3), updated_at = now() "
                "WHERE id = $1 RETURNING *",
                order_id,
                start.pay_url,
                start.trade_no,
            )
        assert row is not None
        return orders.view(row)

    # --- the channels' notifications -----------------------------------------------------------

    async def _record_notification(
        self, channel: str, order_no: str | None, verified: bool, outcome: str, detail: str | None = None
    ) -> None:
        async with self.pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO payments.channel_notifications (channel, order_no, verified, outcome, detail) "
                "VALUES ($1, $2, $3, $4, $5)",
                channel,
                order_no,
                verified,
                outcome,
                detail,
            )
            if outcome not in _AUDITED_ELSEWHERE:
                await audit_txn(
                    connection,
                    Actor(kind="anonymous", id=channel),
                    "topup.notification",
                    None,
                    {
                        "channel": channel,
                        "order_no": order_no,
                        "outcome": outcome,
                        "detail": (detail or "")[:200],
                    },
                    "success" if verified and outcome in _ACCEPTED else "denied",
                )

    async def notification(self, channel: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        """Verify and apply a channel's notification; the channel's success reply, or an error raised."""
        connector = self.connectors.get(channel)
        if connector is None:
            await self._record_notification(channel[:32], None, False, "unknown channel")
            raise UnknownChannel(f"unknown payment channel {channel!r}")
        try:
            notified = connector.verify_notification(headers, body)
        except ForgedNotification as exc:
            await self._record_notification(channel, None, False, "forged", str(exc))
            raise
        order = await self.pool.fetchrow(
            "SELECT * FROM payments.topup_orders WHERE order_no = $1", notified.order_no
        )
        if order is None:
            await self._record_notification(channel, notified.order_no, True, "unknown order")
            raise OrderNotFound(f"no top-up order {notified.order_no}")
        if order["channel"] != channel:
            await self._record_notification(channel, notified.order_no, True, "wrong channel")
            raise OrderStateConflict(f"order {notified.order_no} is not being paid through {channel}")
        if notified.status is PaymentStatus.PAID and notified.amount != order["amount"]:
            detail = f"notified {notified.amount} fen for an order of {order['amount']} fen"
            await self._record_notification(channel, notified.order_no, True, "amount mismatch", detail)
            raise AmountRefused(detail)
        outcome = await self._apply(
            order, notified.status, notified.amount, notified.trade_no, f"{channel} notification"
        )
        await self._record_notification(channel, notified.order_no, True, outcome)
        return connector.success_reply

    async def _apply(
        self, order: Any, status: PaymentStatus, amount: int | None, trade_no: str | None, cause: str
    ) -> str:
        async with self.pool.acquire() as connection, connection.transaction():
            if status is PaymentStatus.PAID:
                moved = await orders.credit_paid_txn(
                    connection, order, amount=amount or 0, trade_no=trade_no, cause=cause
                )
                if moved is None:
                    return "duplicate"
                details: dict[str, Any] = {"amount": int(order["amount"]), "channel": order["channel"]}
                await audit_txn(connection, SYSTEM, "topup.paid", str(order["id"]), details)
                return "applied"
            if status is PaymentStatus.FAILED:
                moved = await orders.transition_txn(
                    connection, order["id"], ("paying",), "failed", cause, failure=cause
                )
                return "failed" if moved is not None else "duplicate"
            if status in (PaymentStatus.CLOSED, PaymentStatus.NOT_FOUND):
                moved = await orders.transition_txn(
                    connection, order["id"], ("created", "paying"), "closed", cause
                )
                return "closed" if moved is not None else "duplicate"
        return "waiting"

    # --- the sweep: query what was never notified, close what expired, settle open refunds -----

    async def sweep(self, now: dt.datetime | None = None, *, limit: int = 500) -> dict[str, int]:
        now = now or dt.datetime.now(dt.UTC)
        counts = {"queried": 0, "credited": 0, "closed": 0, "failed": 0, "errors": 0}
        stale = await self.pool.fetch(
            "SELECT * FROM payments.topup_orders WHERE state IN ('created', 'paying') "
            "AND (updated_at <= $1 OR expires_at <= $2) ORDER BY created_at LIMIT $3",
            now - dt.timedelta(seconds=self.settings.query_after),
            now,
            limit,
        )
        for order in stale:
            expired = order["expires_at"] <= now
            if order["state"] == "created" or order["channel"] not in self.connectors:
                if expired:
                    counts["closed"] += (
                        await self._apply(order, PaymentStatus.CLOSED, None, None, "expired") == "closed"
                    )
                continue
            counts["queried"] += 1
            outcome = await self._query(order, expired=expired)
            counts["credited"] += outcome == "applied"
            counts["closed"] += outcome == "closed"
            counts["failed"] += outcome == "failed"
            counts["errors"] += outcome == "error"
        # Imported here: refund_outcome builds on this module (Actor, audit_txn, the service).
        from payments.topup.refund_outcome import settle_open_refunds

        counts |= await settle_open_refunds(self, now)
        counts["keys_pruned"] = await idempotency.prune(self.pool, now)
        return counts

    async def _query(self, order: Any, *, expired: bool) -> str:
        """Ask the order's channel and apply its answer (closing an expired unpaid order there first)."""
        connector = self.connectors[order["channel"]]
        try:
            found = await connector.query(order["order_no"])
            if found.status is PaymentStatus.WAITING and expired and await connector.close(order["order_no"]):
                found = msgspec.structs.replace(found, status=PaymentStatus.CLOSED)
        except ChannelError:
            return "error"
        if found.status is PaymentStatus.PAID and found.amount != order["amount"]:
            await self._record_notification(
                order["channel"], order["order_no"], True, "amount mismatch", "query"
            )
            return "error"
        return await self._apply(
            order, found.status, found.amount, found.trade_no, f"{order['channel']} query"
        )

    async def refresh(self, order_id: uuid.UUID) -> TopupView:
        """Query the channel now for one order being paid (not waiting for the notification or the sweep)."""
        order = await self._own(None, order_id)
        if order["state"] == "paying" and order["channel"] in self.connectors:
            await self._query(order, expired=False)
        return await self.get(None, order_id)
