"""What became of a refund at the channel, and the ledger move that follows only a definite answer.

A refund's money is reserved first (``payments.topup.refunds``). Then the channel is asked, under
the refund's own number, on which every channel deduplicates. Its answer decides:

- refunded (SUCCEEDED): the reservation is posted, the refund ``succeeded``;
- refused (REFUSED): the reservation is voided (the money is the citizen's again), ``failed``;
- anything else: a timeout, an HTTP error, a reply that is garbled or not signed by the channel,
  WeChat's PROCESSING: the channel may well have refunded, so nothing moves. The refund stays
  reserved as ``processing`` (or ``requested``, if the process stopped before asking) and the
  top-up sweep asks again (:func:`settle_open_refunds`): the refund's status, and, when the
  channel has never heard of it, the refund itself once more under the same number.

Voiding on a mere error would give the citizen the money back while the channel pays it out too.

The order becomes ``refunded`` only when its succeeded refunds make up its whole amount and none
is still open: ``refunded_amount`` counts reserved refunds too, and one of them may yet be refused.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from payments._db import Connection
from payments.channels import ChannelConnector, ChannelError, RefundStatus
from payments.ledger import Transfer, TransferFlags, create_transfers_txn
from payments.posting import TRANSFER_CODES
from payments.topup import orders
from payments.topup.models import OrderStateConflict, RefundView
from payments.topup.service import SYSTEM, Actor, TopupService, audit_txn

__all__ = ["OPEN_STATES", "ask_channel", "settle_open_refunds", "view"]

OPEN_STATES = ("requested", "processing")  # money reserved, the channel's answer not known


def view(row: asyncpg.Record) -> RefundView:
    return RefundView(
        id=row["id"],
        refund_no=row["refund_no"],
        order_id=row["order_id"],
        amount=int(row["amount"]),
        state=row["state"],
    )


async def _channel_says(connector: ChannelConnector, refund: Any, *, ask_first: bool) -> RefundStatus | None:
    """The channel's word on the refund; ``None`` when it gave none that can be trusted.

    ``ask_first``: send the refund (the first time); otherwise query it, and send it again only
    if the channel has never heard of it."""
    order_no, refund_no = refund["order_no"], refund["refund_no"]
    amount, total = int(refund["amount"]), int(refund["total"])
    status: RefundStatus | None = None
    try:
        if ask_first:
            status = await connector.refund(order_no, refund_no, amount, total)
            if status is RefundStatus.PROCESSING:
                return status
        else:
            status = await connector.refund_query(order_no, refund_no)
            if status is RefundStatus.NOT_FOUND:
                status = await connector.refund(order_no, refund_no, amount, total)
    except ChannelError:
        status = None
    if status is None and ask_first:
        # The answer was lost or garbled; often the channel has it already, so ask once now.
        try:
            status = await connector.refund_query(order_no, refund_no)
        except ChannelError:
            return None
    return None if status is RefundStatus.NOT_FOUND else status


async def _resolve_txn(connection: Connection, refund: Any, *, post: bool) -> None:
    flag = TransferFlags.POST_PENDING_TRANSFER if post else TransferFlags.VOID_PENDING_TRANSFER
    [result] = await create_transfers_txn(
        connection,
        [
            Transfer(
                id=uuid.uuid5(refund["transfer_id"], "resolve"),
                pending_id=refund["transfer_id"],
                code=TRANSFER_CODES["refund"],
                flags=flag,
            )
        ],
    )
    if not result.succeeded:
        # Rolled back whole: the refund stays open, and the sweep tries again.
        raise OrderStateConflict(
            f"the ledger refused to resolve refund {refund['refund_no']}: {result.value}"
        )


async def _settle(
    service: TopupService, refund_id: uuid.UUID, status: RefundStatus | None, actor: Actor, cause: str
) -> asyncpg.Record:
    """Record the channel's answer: post, void, or leave reserved. The refund's row as it is now."""
    async with service.pool.acquire() as connection, connection.transaction():
        # Lock order as everywhere in top-ups: the order, then the refund, then the ledger.
        order_id = await connection.fetchval("SELECT order_id FROM payments.refunds WHERE id = $1", refund_id)
        await orders.load_txn(connection, order_id, lock=True)
        refund = await connection.fetchrow(
            "SELECT * FROM payments.refunds WHERE id = $1 FOR UPDATE", refund_id
        )
        assert refund is not None
        if refund["state"] not in OPEN_STATES:
            return refund  # settled meanwhile (the request and the sweep both asked)
        details: dict[str, Any] = {
            "refund_no": refund["refund_no"], "amount": int(refund["amount"]), "cause": cause,
        }  # fmt: skip
        if status is RefundStatus.SUCCEEDED:
            await _resolve_txn(connection, refund, post=True)
            state = "succeeded"
            await audit_txn(connection, actor, "topup.refund.refunded", str(order_id), details)
        elif status is RefundStatus.REFUSED:
            await _resolve_txn(connection, refund, post=False)
            state = "failed"
            await connection.execute(
                "UPDATE payments.topup_orders SET refunded_amount = refunded_amount - $2 WHERE id = $1",
                order_id,
                refund["amount"],
            )
            await audit_txn(connection, actor, "topup.refund.refused", str(order_id), details, "failure")
        else:
            state = "processing"
        row = await connection.fetchrow(
            "UPDATE payments.refunds SET state = $2, attempts = attempts + 1, checked_at = now(), "
            "completed_at = CASE WHEN $2 IN ('succeeded', 'failed') THEN now() END "
            "WHERE id = $1 RETURNING *",
            refund_id,
            state,
        )
        assert row is not None
        if state != "processing":
            await _follow_refunds_txn(connection, order_id, actor, details)
        return row


async def _follow_refunds_txn(
    connection: Connection, order_id: uuid.UUID, actor: Actor, details: dict[str, Any]
) -> None:
    """The order is ``refunded`` when, and only when, its succeeded refunds make up its amount and
    none is open. ``refunded_amount`` counts reserved refunds too: one still open may yet be refused,
    and its money must then be loadable (``awaiting_load``) or refundable again (``credited``).
    An order found ``refunded`` otherwise (moved there before this rule) goes back to where it was.
    Under the order's row lock, taken by the caller, in the transaction that settles the refund."""
    order = await orders.load_txn(connection, order_id)
    assert order is not None
    refunds = await connection.fetchrow(
        "SELECT coalesce(sum(amount) FILTER (WHERE state = 'succeeded'), 0) AS succeeded, "
        "count(*) FILTER (WHERE state IN ('requested', 'processing')) AS open "
        "FROM payments.refunds WHERE order_id = $1",
        order_id,
    )
    assert refunds is not None
    if int(refunds["succeeded"]) == int(order["amount"]) and refunds["open"] == 0:
        await orders.transition_txn(
            connection, order_id, ("credited", "awaiting_load"), "refunded", "refunded in full"
        )
    elif order["state"] == "refunded":
        earlier = await connection.fetchval(
            "SELECT from_state FROM payments.topup_events WHERE order_id = $1 AND to_state = 'refunded' "
            "ORDER BY id DESC LIMIT 1",
            order_id,
        )
        if earlier not in ("credited", "awaiting_load"):
            earlier = "credited" if order["credited_at"] is not None else "awaiting_load"
        await orders.transition_txn(
            connection, order_id, ("refunded",), earlier, "a refund was refused: not refunded in full"
        )
        reopened = {**details, "state": earlier, "succeeded": int(refunds["succeeded"])}
        await audit_txn(connection, actor, "topup.reopened", str(order_id), reopened)


_OPEN = (
    "SELECT r.*, o.order_no, o.channel, o.amount AS total FROM payments.refunds r "
    "JOIN payments.topup_orders o ON o.id = r.order_id "
)


async def ask_channel(service: TopupService, refund_id: uuid.UUID, actor: Actor) -> RefundView:
    """Send a just-reserved refund to its channel and settle what the answer allows."""
    refund = await service.pool.fetchrow(_OPEN + "WHERE r.id = $1", refund_id)
    assert refund is not None
    status = await _channel_says(service.connectors[refund["channel"]], refund, ask_first=True)
    return view(await _settle(service, refund_id, status, actor, f"{refund['channel']} refund"))


async def settle_open_refunds(service: TopupService, now: dt.datetime, *, limit: int = 200) -> dict[str, int]:
    """The sweep's part for refunds: ask the channel about those still open since ``query_after``."""
    counts = {"refunds_checked": 0, "refunds_succeeded": 0, "refunds_failed": 0}
    stale = await service.pool.fetch(
        _OPEN + "WHERE r.state IN ('requested', 'processing') "
        "AND coalesce(r.checked_at, r.created_at) <= $1 ORDER BY r.created_at LIMIT $2",
        now - dt.timedelta(seconds=service.settings.query_after),
        limit,
    )
    for refund in stale:
        connector = service.connectors.get(refund["channel"])
        if connector is None:
            continue  # the channel is not configured here: nothing to ask, nothing to decide
        counts["refunds_checked"] += 1
        status = await _channel_says(connector, refund, ask_first=False)
        settled = await _settle(service, refund["id"], status, SYSTEM, f"{refund['channel']} refund query")
        counts["refunds_succeeded"] += settled["state"] == "succeeded"
        counts["refunds_failed"] += settled["state"] == "failed"
    return counts
