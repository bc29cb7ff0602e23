"""The operators' card API: search, look at a card and its lifecycle history, freeze, unfreeze, close.

Every call is in identity's audit log (``card.admin.search``, ``card.admin.view``,
``card.admin.history`` for the reads: ``card.lifecycle.oversight``); personal data is shown masked."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from card.api.services import CardServices
from card.lifecycle.oversight import history_for_operator, search_for_operator, view_for_operator
from card.lifecycle.views import CardSummary, CardView, LifecycleEvent
from identity.auth import Principal, requires_operator_role

__all__ = ["AdminCardController"]

Req = Request[Any, Any, Any]
_READERS = requires_operator_role("support", "security_admin", "auditor")
_WRITERS = requires_operator_role("support", "security_admin")


class AdminCardController(Controller):
    path = "/api/v1/admin/cards"
    tags = ["card-admin"]  # noqa: RUF012

    @get("", operation_id="AdminSearchCards", guards=[_READERS])
    async def search(  # noqa: PLR0917 - Litestar's handler shape
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_number: FromQuery[str | None] = None,
        holder_id: FromQuery[uuid.UUID | None] = None,
        status: FromQuery[str | None] = None,
        limit: FromQuery[int] = 50,
    ) -> list[CardSummary]:
        """Cards by number, holder or status; the search is audited with the cards it found."""
        return await search_for_operator(
            card.cards,
            card.actor(principal, request),
            card_number=card_number,
            holder_id=holder_id,
            status=status,
            limit=max(1, min(limit, 200)),
        )

    @get("/{card_id:uuid}", operation_id="AdminGetCard", guards=[_READERS])
    async def get_card(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> CardView:
        """The card as its holder sees it (the social security number masked); audited."""
        return await view_for_operator(card.cards, card_id, card.actor(principal, request))

    @get("/{card_id:uuid}/history", operation_id="AdminCardHistory", guards=[_READERS])
    async def history(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> list[LifecycleEvent]:
        """The card's lifecycle events; audited."""
        return await history_for_operator(card.cards, card_id, card.actor(principal, request))

    @post(
        "/{card_id:uuid}/freeze", operation_id="AdminFreezeCard", guards=[_WRITERS], status_code=HTTP_200_OK
    )
    async def freeze(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> CardView:
        return await card.cards.freeze(card_id, card.actor(principal, request))

    @post(
        "/{card_id:uuid}/unfreeze",
        operation_id="AdminUnfreezeCard",
        guards=[_WRITERS],
        status_code=HTTP_200_OK,
    )
    async def unfreeze(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> CardView:
        """Lift a freeze, the holder's or the card service's (the holder may lift only their own)."""
        return await card.cards.unfreeze(card_id, card.actor(principal, request))

    @post("/{card_id:uuid}/close", operation_id="AdminCloseCard", guards=[_WRITERS], status_code=HTTP_200_OK)
    async def close(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> CardView:
        """Close the card; its e-purse balance is refunded after the offline settlement window
        (``refund_due_at``), less the taps uploaded meanwhile."""
        actor = card.actor(principal, request)
        return await card.cards.close(card_id, actor)
