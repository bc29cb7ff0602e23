"""Refunds of top-ups to the channel they were paid through, and a closed card's balance.

A refund reserves the money first (a pending ledger transfer from the e-purse, or from the
holding account for a physical card's unloaded top-up, to the channel's clearing account), then
asks the channel; only the channel's definite answer posts the reservation (refunded) or voids it
(refused), see ``payments.topup.refund_outcome``: an unknown outcome keeps the money reserved and
the refund ``processing`` until the sweep finds out.

The e-purse never goes below zero for a refund: the reservation is refused unless the e-purse's
own money (its overdraft allowance left out) covers it, checked under the ledger's locks.

For card (closing a card): ``refund_card_balance(service, card_id, actor)`` refunds the e-purse's
available balance to the channels of the card's credited top-ups, newest first; what no top-up
covers (kiosk cash loads, say) is returned as ``unrefunded`` for the card desk to pay out. A
refund still ``processing`` counts as on its way (its money is reserved, out of the e-purse).
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import msgspec

from payments._db import Connection
from payments.demo import platform_account_id
from payments.ledger import Transfer, TransferFlags, create_transfers_txn, lookup_balances
from payments.ledger import sql as ledger_sql
from payments.posting import TRANSFER_CODES
from payments.topup import idempotency, orders
from payments.topup.models import AmountRefused, OrderStateConflict, RefundView
from payments.topup.refund_outcome import ask_channel
from payments.topup.service import Actor, TopupService, audit_txn

__all__ = ["CardRefund", "refund_card_balance", "refund_topup"]


class CardRefund(msgspec.Struct, frozen=True, kw_only=True):
    balance: int
    refunds: list[RefundView]
    unrefunded: int


async def refund_topup(
    service: TopupService,
    order_id: uuid.UUID,
    *,
    person_id: uuid.UUID | None,
    amount: int | None,
    reason: str,
    actor: Actor,
    claim: idempotency.Claim | None = None,
) -> RefundView:
    """Reserve, ask the channel, settle what it answered (the state: succeeded, failed, processing).

    ``claim``: the request's Idempotency-Key, answered with the refund as soon as it is reserved."""
    order = await service._own(person_id, order_id)
    left = int(order["amount"]) - int(order["refunded_amount"])
    amount = left if amount is None else amount
    error: Exception | None = None
    if order["state"] not in ("credited", "awaiting_load"):
        error = OrderStateConflict(f"an order in state {order['state']} cannot be refunded")
    elif not 0 < amount <= left:
        error = AmountRefused(f"a refund is between 1 and {left} fen for this order, got {amount}")
    if error is not None:
        await service.refuse(actor, "topup.refund", str(order_id), error)
        raise error
    if order["channel"] not in service.connectors:
        error = OrderStateConflict(f"the channel {order['channel']} is not available for refunds now")
        await service.refuse(actor, "topup.refund", str(order_id), error)
        raise error
    refund = _Reservation(
        id=uuid.uuid4(),
        refund_no=f"RF{dt.datetime.now(dt.UTC):%Y%m%d}{secrets.token_hex(6).upper()}",
        order_id=order_id,
        state=order["state"],
        source=(
            order["epurse_account_id"]
            if order["state"] == "credited"
            else platform_account_id(orders.HOLDING_ACCOUNT)
        ),
        clearing=platform_account_id(f"clearing:{order['channel']}"),
        amount=amount,
    )
    try:
        async with service.pool.acquire() as connection, connection.transaction():
            await _reserve_txn(connection, refund, reason, actor)
            if claim is not None:  # a retry finds this refund, never reserves a second one
                await claim.store_txn(connection, _requested(refund))
    except AmountRefused as exc:  # the e-purse's own money, or the ledger, refused: recorded too
        await service.refuse(actor, "topup.refund", str(order_id), exc)
        raise
    return await ask_channel(service, refund.id, actor)


def _requested(refund: _Reservation) -> RefundView:
    return RefundView(
        id=refund.id, refund_no=refund.refund_no, order_id=refund.order_id, amount=refund.amount,
        state="requested",
    )  # fmt: skip


class _Reservation(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID  # the refund's, and its pending transfer's
    refund_no: str
    order_id: uuid.UUID
    state: str  # the order's, as the request saw it
    source: uuid.UUID
    clearing: uuid.UUID
    amount: int


async def _reserve_txn(connection: Connection, refund: _Reservation, reason: str, actor: Actor) -> None:
    locked = await orders.load_txn(connection, refund.order_id, lock=True)
    assert locked is not None
    if (
        int(locked["refunded_amount"]) + refund.amount > int(locked["amount"])
        or locked["state"] != refund.state
    ):
        raise OrderStateConflict("the order changed meanwhile; try again")
    await _check_own_money_txn(connection, refund.source, refund.clearing, refund.amount)
    [result] = await create_transfers_txn(
        connection,
        [
            Transfer(
                id=refund.id, debit_account_id=refund.source, credit_account_id=refund.clearing,
                amount=refund.amount, code=TRANSFER_CODES["refund"], flags=TransferFlags.PENDING,
                user_data_128=refund.order_id, reference=f"refund:{refund.refund_no}",
            )
        ],
    )  # fmt: skip
    if not result.succeeded:
        raise AmountRefused(f"the e-purse cannot give back {refund.amount} fen ({result.value})")
    await connection.execute(
        "INSERT INTO payments.refunds (id, refund_no, order_id, amount, reason, state, transfer_id, "
        "created_at) VALUES ($1, $2, $3, $4, $5, 'requested', $1, now())",
        refund.id,
        refund.refund_no,
        refund.order_id,
        refund.amount,
        reason[:200],
    )
    await connection.execute(
        "UPDATE payments.topup_orders SET refunded_amount = refunded_amount + $2 WHERE id = $1",
        refund.order_id,
        refund.amount,
    )
    details = {"amount": refund.amount, "refund_no": refund.refund_no}
    await audit_txn(connection, actor, "topup.refund", str(refund.order_id), details)


async def _check_own_money_txn(
    connection: Connection, source: uuid.UUID, clearing: uuid.UUID, amount: int
) -> None:
    """Refuse unless ``source`` holds ``amount`` of its own, overdraft left out.

    The ledger itself would let an e-purse go down to minus its overdraft limit; a refund must not
    give back money the citizen never put in. Checked under the locks the ledger takes for the
    reservation (its writer lock shared, then both accounts' rows in id order: the ledger's own
    order, so no deadlock with it), held until the reservation commits: no tap or load between."""
    await connection.fetchrow(ledger_sql.LOCK_SHARED, ledger_sql.WRITER_LOCK)
    rows = await connection.fetch(ledger_sql.LOCK_ACCOUNTS, [source, clearing])
    account = next((r for r in rows if r["id"] == source), None)
    own = (
        0
        if account is None
        else account["credits_posted"] - account["debits_posted"] - account["debits_pending"]
    )
    if own < amount:
        raise AmountRefused(
            f"the e-purse holds {max(own, 0)} fen of its own; it cannot give back {amount} fen"
        )


async def refund_card_balance(service: TopupService, card_id: uuid.UUID, actor: Actor) -> CardRefund:
    row = await service.pool.fetchrow(
        "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", card_id
    )
    account = row["ledger_account_id"] if row is not None else None
    balances = await lookup_balances(service.pool, [account]) if account is not None else {}
    balance = balances[account].available if account in balances else 0
    remaining = max(balance, 0)
    refunds: list[RefundView] = []
    candidates = await service.pool.fetch(
        "SELECT id, amount - refunded_amount AS left FROM payments.topup_orders "
        "WHERE card_id = $1 AND state = 'credited' AND amount > refunded_amount ORDER BY credited_at DESC",
        card_id,
    )
    for order in candidates:
        if remaining <= 0:
            break
        amount = min(remaining, int(order["left"]))
        view = await refund_topup(
            service, order["id"], person_id=None, amount=amount, reason="card closed", actor=actor
        )
        refunds.append(view)
        if view.state != "failed":  # refunded, or reserved and on its way
            remaining -= amount
    return CardRefund(balance=balance, refunds=refunds, unrefunded=remaining)
