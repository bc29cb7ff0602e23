"""The steps of the lifecycle that talk to other systems outside the card's transaction.

- :func:`refund_after_close`: a closed card's e-purse balance back through payments
  (``card.refunds``), recorded as a ``refund_balance`` lifecycle event and audited; a refund that
  fails is reported (``BalanceRefund.error``, everything left ``unrefunded``), never raised.
- :func:`refresh_card_applications`: the pending upstream applications looked up again
  (``card.lifecycle.provisioning``) with no connection held meanwhile, then written under the
  card's row lock as a ``refresh_applications`` event when something changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING

from card.audit import Actor, DetailValue
from card.errors import CardNotFound
from card.lifecycle import repo
from card.lifecycle.provisioning import apply_refresh_txn, due_for_refresh, holder_for_refresh, provision
from card.lifecycle.states import Status
from card.lifecycle.views import BalanceRefund, CardView
from card.refunds import BalanceRefunder

if TYPE_CHECKING:
    from card.lifecycle.service import CardService

__all__ = ["refresh_card_applications", "refund_after_close"]

log = logging.getLogger("citizen.card.lifecycle")

_LIVE = (Status.ACTIVE, Status.FROZEN, Status.LOST)
_HOLDER_LOA = 2  # a card exists, so its holder was at L2 at issuance (provisioning does not use it)


async def refund_after_close(
    service: CardService, card_id: uuid.UUID, actor: Actor, refund: BalanceRefunder, now: dt.datetime
) -> BalanceRefund:
    try:
        outcome = await refund(card_id, actor)
    except Exception as exc:
        log.exception("refund of closed card %s failed", card_id)
        async with service.pool.acquire() as connection:
            left = await service._balance(connection, card_id) or 0
        outcome = BalanceRefund(
            balance=left,
            refunded=0,
            unrefunded=max(left, 0),
            refunds=[],
            error=f"{type(exc).__name__}: {exc}"[:200],
        )
    if outcome.balance or outcome.refunds or outcome.error:
        details: dict[str, DetailValue] = {
            "balance": outcome.balance,
            "refunded": outcome.refunded,
            "unrefunded": outcome.unrefunded,
            "refunds": [f"{r.refund_no}:{r.amount}:{r.state}" for r in outcome.refunds],
            "error": outcome.error,
        }
        async with service.pool.acquire() as connection, connection.transaction():
            await repo.record_event_txn(
                connection,
                card_id,
                action="refund_balance",
                from_status=Status.CLOSED,
                to_status=Status.CLOSED,
                actor=actor,
                now=now,
                details=details,
            )
            await service._audit(connection, actor, "refund_balance", card_id, details)
    return outcome


async def refresh_card_applications(
    service: CardService, card_id: uuid.UUID, actor: Actor, transient_only: bool, now: dt.datetime
) -> CardView:
    async with service.pool.acquire() as connection:
        card = await connection.fetchrow("SELECT holder_id, status FROM card.cards WHERE id = $1", card_id)
        if card is None:
            raise CardNotFound("no such card")
        rows = await connection.fetch(
            "SELECT app_type, attributes FROM card.applications WHERE card_id = $1 AND status = 'pending'",
            card_id,
        )
    due = due_for_refresh(rows, transient_only=transient_only)
    if not due or Status(card["status"]) not in _LIVE:
        return await service.view(card_id)
    holder = holder_for_refresh(card["holder_id"], _HOLDER_LOA, due)
    found = await provision(holder, service.directory, due)  # no connection held meanwhile
    async with service.pool.acquire() as connection, connection.transaction():
        locked = await repo.lock_card_txn(connection, card_id)
        changed = await apply_refresh_txn(connection, card_id, found, now) if locked.status in _LIVE else []
        if changed:
            details: dict[str, DetailValue] = {"applications": changed}
            await repo.record_event_txn(
                connection,
                card_id,
                action="refresh_applications",
                from_status=locked.status,
                to_status=locked.status,
                actor=actor,
                now=now,
                details=details,
            )
            await service._audit(connection, actor, "refresh_applications", card_id, details)
        balance = await service._balance(connection, card_id)
        return await repo.card_view(connection, card_id, balance=balance)
