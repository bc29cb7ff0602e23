"""Physical-card top-ups held until a kiosk loads them onto the chip (for card/terminal).

A paid top-up of a physical card sits in ``awaiting_load`` with its money in the platform's
``topups:awaiting-load`` account. The terminal host, when a kiosk asks to load the card online:

1. ``held = await begin_kiosk_load_txn(connection, card_id)`` → a :class:`HeldTopup` or ``None``.
   The order moves ``awaiting_load → loading`` (locked; a second kiosk gets the next one or None).
2. reserve the load as a pending ledger transfer debiting ``held.source_account_id`` and
   crediting ``held.epurse_account_id`` for ``held.amount`` (MAC2 issued);
3. on the card's confirmation (TAC), post it and call
   ``finish_kiosk_load_txn(connection, held.order_id, loaded=True)`` → ``credited``; on a
   reversal, void it and call it with ``loaded=False`` → back to ``awaiting_load``.

All three run inside the terminal's own transactions (``connection``), so the load row, the ledger
and the order state commit together. ``held_topups(db, card_id)`` lists what is waiting.

A top-up partly refunded while it waited is loaded for what is left of it (``amount`` minus
``refunded_amount``). One with a refund still open at its channel (reserved, the outcome not
known) is not handed out until that refund is settled: if the channel refused, its money would
belong on the card too, and the load would already have left it behind in the holding account.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from payments._db import Connection, Pool
from payments.demo import platform_account_id
from payments.topup.models import HeldTopup
from payments.topup.notices import notify_credited_txn
from payments.topup.orders import HOLDING_ACCOUNT, transition_txn

__all__ = ["begin_kiosk_load_txn", "finish_kiosk_load_txn", "held_topups"]


def _held(row: asyncpg.Record) -> HeldTopup:
    return HeldTopup(
        order_id=row["id"],
        card_id=row["card_id"],
        amount=int(row["amount"]) - int(row["refunded_amount"]),
        source_account_id=platform_account_id(HOLDING_ACCOUNT),
        epurse_account_id=row["epurse_account_id"],
    )


_LOADABLE = (
    "FROM payments.topup_orders o WHERE o.card_id = $1 AND o.state = 'awaiting_load' "
    "AND NOT EXISTS (SELECT 1 FROM payments.refunds r "
    "WHERE r.order_id = o.id AND r.state IN ('requested', 'processing')) "
)


async def held_topups(db: Pool | Connection, card_id: uuid.UUID) -> list[HeldTopup]:
    rows = await db.fetch(f"SELECT o.* {_LOADABLE} ORDER BY o.paid_at", card_id)
    return [_held(r) for r in rows]


async def begin_kiosk_load_txn(connection: Connection, card_id: uuid.UUID) -> HeldTopup | None:
    row = await connection.fetchrow(
        f"SELECT o.id {_LOADABLE} ORDER BY o.paid_at LIMIT 1 FOR UPDATE OF o SKIP LOCKED",
        card_id,
    )
    if row is None:
        return None
    moved = await transition_txn(connection, row["id"], ("awaiting_load",), "loading", "kiosk load started")
    return None if moved is None else _held(moved)


async def finish_kiosk_load_txn(connection: Connection, order_id: uuid.UUID, *, loaded: bool) -> bool:
    """True when the order moved (credited, or back to awaiting_load); False if it was not loading."""
    if loaded:
        moved = await transition_txn(
            connection,
            order_id,
            ("loading",),
            "credited",
            "loaded at a kiosk",
            credited_at=dt.datetime.now(dt.UTC),
        )
        if moved is not None:
            await notify_credited_txn(connection, moved)
    else:
        moved = await transition_txn(
            connection, order_id, ("loading",), "awaiting_load", "kiosk load reversed"
        )
    return moved is not None
