"""The steps of the lifecycle that talk to other systems outside the card's transaction.

- :func:`run_due_refunds`: the closed cards whose offline settlement window has passed get their
  e-purse balance back through payments (``card.refunds``) — the balance of record then, so the
  taps uploaded since the close are paid first — each recorded as a ``refund_balance`` lifecycle
  event and audited (:func:`refund_after_close`); a refund that fails is reported
  (``BalanceRefund.error``, everything left ``unrefunded``), never raised. ``citizen card settle``
  runs it; tests pass ``now``.
- :func:`refresh_card_applications`: the pending upstream applications looked up again
  (``card.lifecycle.provisioning``) with no connection held meanwhile, then written under the
  card's row lock as a ``refresh_applications`` event when something changed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING

from card.audit import SYSTEM, Actor, DetailValue
from card.errors import CardNotFound
from card.lifecycle import repo
from card.lifecycle.provisioning import apply_refresh_txn, due_for_refresh, holder_for_refresh, provision
from card.lifecycle.states import Status
from card.lifecycle.views import BalanceRefund, CardView
from card.refunds import BalanceRefunder

if TYPE_CHECKING:
    from card.lifecycle.service import CardService

__all__ = ["refresh_card_applications", "refund_after_close", "run_due_refunds"]

log = logging.getLogger("citizen.card.lifecycle")

_LIVE = (Status.ACTIVE, Status.FROZEN, Status.LOST)
_LEASE = dt.timedelta(minutes=15)  # far longer than a refund's channel calls take
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
            await repo.note_txn(
                connection,
                card_id,
                action="refund_balance",
                status=Status.CLOSED,
                actor=actor,
                now=now,
                details=details,
                audit=service.audit,
            )
    return outcome


async def run_due_refunds(
    service: CardService,
    refund: BalanceRefunder,
    *,
    now: dt.datetime,
    actor: Actor = SYSTEM,
    limit: int = 1000,
    lease: dt.timedelta = _LEASE,
) -> list[tuple[uuid.UUID, BalanceRefund]]:
    done: list[tuple[uuid.UUID, BalanceRefund]] = []
    for _ in range(limit):
        # Claimed in a short transaction, refunded outside it (the channels are called over HTTP):
        # a runner that dies leaves its claim to expire after ``lease`` and be taken again.
        async with service.pool.acquire() as connection, connection.transaction():
            card_id = await connection.fetchval(
                "UPDATE card.close_refunds SET status = 'running', claimed_at = $1 WHERE card_id = ("
                "SELECT card_id FROM card.close_refunds WHERE (status = 'scheduled' AND due_at <= $1) "
                "OR (status = 'running' AND claimed_at <= $2) ORDER BY due_at LIMIT 1 "
                "FOR UPDATE SKIP LOCKED) RETURNING card_id",
                now,
                now - lease,
            )
        if card_id is None:
            break
        outcome = await refund_after_close(service, card_id, actor, refund, now)
        async with service.pool.acquire() as connection:
            await connection.execute(
                "UPDATE card.close_refunds SET status = 'done', done_at = $2, balance = $3, refunded = $4, "
                "unrefunded = $5 WHERE card_id = $1",
                card_id,
                now,
                outcome.balance,
                outcome.refunded,
                outcome.unrefunded,
            )
        done.append((card_id, outcome))
    return done


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
            await repo.note_txn(
                connection,
                card_id,
                action="refresh_applications",
                status=locked.status,
                actor=actor,
                now=now,
                details=details,
                audit=service.audit,
            )
        balance = await service._balance(connection, card_id)
        return await repo.card_view(connection, card_id, balance=balance)
