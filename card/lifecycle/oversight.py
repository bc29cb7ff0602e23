"""What operators read about cards (search, a card, its history), each read audited.

A read by the city's staff of a citizen's card is itself a fact for the audit log: who (the
:class:`~card.audit.Actor`), which card (the target; a search has none and lists the cards it
answered instead), never what was shown. The audit entry is written on the connection that read,
after the read: a card that does not exist answers 404 and leaves no entry, as in identity's admin.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from card.audit import Actor, DetailValue
from card.lifecycle import repo
from card.lifecycle.views import CardSummary, CardView, LifecycleEvent

if TYPE_CHECKING:
    from card.lifecycle.service import CardService

__all__ = ["history_for_operator", "search_for_operator", "view_for_operator"]


async def search_for_operator(
    service: CardService,
    actor: Actor,
    *,
    card_number: str | None = None,
    holder_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[CardSummary]:
    async with service.pool.acquire() as connection:
        found = await repo.search(
            connection, card_number=card_number, holder_id=holder_id, status=status, limit=limit
        )
        if service.audit is not None:
            # Which criteria, not their values: a card number or holder is found again through "cards".
            given = {"card_number": card_number, "holder_id": holder_id, "status": status}
            details: dict[str, DetailValue] = {
                "by": [name for name, value in given.items() if value is not None],
                "found": len(found),
                "cards": [str(c.id) for c in found],
            }
            await service.audit(connection, actor, "admin.search", None, details)
    return found


async def view_for_operator(service: CardService, card_id: uuid.UUID, actor: Actor) -> CardView:
    async with service.pool.acquire() as connection:
        view = await repo.card_view(connection, card_id, balance=await service._balance(connection, card_id))
        if service.audit is not None:
            await service.audit(connection, actor, "admin.view", card_id, {})
    return view


async def history_for_operator(
    service: CardService, card_id: uuid.UUID, actor: Actor
) -> list[LifecycleEvent]:
    async with service.pool.acquire() as connection:
        events = await repo.history(connection, card_id)
        if service.audit is not None:
            await service.audit(connection, actor, "admin.history", card_id, {"events": len(events)})
    return events
