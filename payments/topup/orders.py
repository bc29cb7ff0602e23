"""Top-up orders in PostgreSQL: the state machine and the ledger moves that go with it.

States (reference §4.4)::

    created ─pay─> paying ─paid─> paid ─virtual card─> credited ─refund─> refunded
       │             │              └─physical card─> awaiting_load ⇄ loading ─kiosk─> credited
       └──expire──> closed <────────┘ (paying: failed on a failed payment)

Every change is ``UPDATE … WHERE id = $1 AND state = ANY($expected) RETURNING``: a late or
duplicated notification finds the order already moved and changes nothing. The money moves in
the same transaction: paid → the channel's clearing account is debited and the e-purse (virtual
card) or the holding account (physical card) credited, with a transfer id derived from the order,
so even a second path to "paid" could not credit twice.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import asyncpg

from payments._db import Connection
from payments.demo import platform_account_id
from payments.ledger import Transfer, create_transfers_txn
from payments.posting import TRANSFER_CODES
from payments.topup.models import OrderStateConflict, TopupView
from payments.topup.notices import notify_credited_txn

__all__ = [
    "HOLDING_ACCOUNT",
    "credit_paid_txn",
    "load_txn",
    "order_transfer_id",
    "record_event_txn",
    "transition_txn",
    "view",
]

HOLDING_ACCOUNT = "topups:awaiting-load"
_NAMESPACE = uuid.UUID("0b6f3c1e-8d55-4f0e-b1a3-7d2c9e4f6a12")  # top-up transfers, fixed forever


def order_transfer_id(order_id: uuid.UUID, step: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{order_id}:{step}")


def view(row: asyncpg.Record) -> TopupView:
    return TopupView(
        id=row["id"],
        order_no=row["order_no"],
        card_id=row["card_id"],
        amount=int(row["amount"]),
        channel=row["channel"],
        state=row["state"],
        pay_url=row["pay_url"],
        refunded_amount=int(row["refunded_amount"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        paid_at=row["paid_at"],
        credited_at=row["credited_at"],
        failure=row["failure"],
    )


_LOAD = "SELECT * FROM payments.topup_orders WHERE id = $1"
_LOAD_LOCKED = _LOAD + " FOR UPDATE"


async def load_txn(
    connection: Connection, order_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    return await connection.fetchrow(_LOAD_LOCKED if lock else _LOAD, order_id)


async def record_event_txn(  # noqa: PLR0917 - one event row
    connection: Connection,
    order_id: uuid.UUID,
    from_state: str | None,
    to_state: str,
    cause: str,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        "INSERT INTO payments.topup_events (order_id, from_state, to_state, cause, at, details) "
        "VALUES ($1, $2, $3, $4, now(), $5::jsonb)",
        order_id,
        from_state,
        to_state,
        cause,
        json.dumps(details or {}),
    )


_SETTABLE = frozenset({"channel", "channel_trade_no", "pay_url", "paid_at", "credited_at", "failure"})


async def transition_txn(
    connection: Connection,
    order_id: uuid.UUID,
    expected: tuple[str, ...],
    to_state: str,
    cause: str,
    **fields: Any,
) -> asyncpg.Record | None:
    """Move the order from one of ``expected`` to ``to_state``; ``None`` if it was not in one."""
    names = sorted(fields)
    if not set(names) <= _SETTABLE:
        raise ValueError(f"cannot set {set(names) - _SETTABLE}")
    assignments = "".join(f", {name} = ${i + 4}" for i, name in enumerate(names))
    row = await connection.fetchrow(
        f"UPDATE payments.topup_orders SET state = $3, updated_at = now(){assignments} "  # noqa: S608 - names checked
        "WHERE id = $1 AND state = ANY($2::text[]) RETURNING *, "
        "(SELECT state FROM payments.topup_orders WHERE id = $1) AS previous_state",
        order_id,
        list(expected),
        to_state,
        *(fields[name] for name in names),
    )
    if row is not None:
        await record_event_txn(connection, order_id, row["previous_state"], to_state, cause)
    return row


async def credit_paid_txn(
    connection: Connection, order: asyncpg.Record, *, amount: int, trade_no: str | None, cause: str
) -> asyncpg.Record | None:
    """paying/created/closed → paid → credited (virtual) or awaiting_load (physical), money included.

    ``None`` when the order had already left those states (a duplicate): nothing moved.
    """
    if amount != order["amount"]:
        raise OrderStateConflict(f"paid {amount} fen for an order of {order['amount']} fen")
    paid = await transition_txn(
        connection,
        order["id"],
        ("created", "paying", "closed"),
        "paid",
        cause,
        paid_at=dt.datetime.now(dt.UTC),
        channel_trade_no=trade_no,
    )
    if paid is None:
        return None
    physical = bool(order["physical"])
    sink = platform_account_id(HOLDING_ACCOUNT) if physical else order["epurse_account_id"]
    [result] = await create_transfers_txn(
        connection,
        [
            Transfer(
                id=order_transfer_id(order["id"], "paid"),
                debit_account_id=platform_account_id(f"clearing:{order['channel']}"),
                credit_account_id=sink,
                amount=amount,
                code=TRANSFER_CODES["topup"],
                user_data_128=order["id"],
                reference=f"topup:{order['order_no']}",
            )
        ],
    )
    if not result.succeeded:
        raise OrderStateConflict(f"the ledger refused the top-up: {result.value}")
    if physical:
        return await transition_txn(
            connection, order["id"], ("paid",), "awaiting_load", "held for a kiosk load"
        )
    credited = await transition_txn(
        connection,
        order["id"],
        ("paid",),
        "credited",
        "credited to the e-purse",
        credited_at=dt.datetime.now(dt.UTC),
    )
    if credited is not None:
        await notify_credited_txn(connection, credited)
    return credited
