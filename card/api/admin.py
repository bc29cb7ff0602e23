"""The operators' card API: search, look at a card and its lifecycle history, freeze, unfreeze, close.

Every call is in identity's audit log (``card.admin.search``, ``card.admin.view``,
``card.admin.history`` for the reads: ``card.lifecycle.oversight``); personal data is shown masked."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from card.api.services import CardServices
from card.audit import Actor
from card.lifecycle.oversight import history_for_operator, search_for_operator, view_for_operator
from card.lifecycle.service import CardService
from card.lifecycle.views import CardSummary, CardView, LifecycleEvent
from identity.auth import Principal, requires_operator_role

__all__ = ["AdminCardController"]

Req = Request[Any, Any, Any]
_READERS = requires_operator_role("support", "security_admin", "auditor")
_WRITERS = requires_operator_role("support", "security_admin")


def _write(path: str, operation_id: str) -> HTTPRouteHandler:
    return post(path, operation_id=operation_id, guards=[_WRITERS], status_code=HTTP_200_OK)


def _on_card(
    route: HTTPRouteHandler,
    name: str,
    call: Callable[[CardService, uuid.UUID, Actor], Awaitable[CardView]],
    doc: str | None = None,
) -> HTTPRouteHandler:
    """A handler ``name`` (its OpenAPI summary derives from it) on ``route`` that runs ``call`` on
    the card in the path, as the operator calling."""

    async def handler(
        self: Controller,
        request: Req,
        principal: NamedDependency[Principal],
        card: NamedDependency[CardServices],
        card_id: FromPath[uuid.UUID],
    ) -> CardView:
        return await call(card.cards, card_id, card.actor(principal, request))

    handler.__name__, handler.__qualname__, handler.__doc__ = name, f"AdminCardController.{name}", doc
    return route(handler)


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

    get_card = _on_card(
        get("/{card_id:uuid}", operation_id="AdminGetCard", guards=[_READERS]),
        "get_card",
        view_for_operator,
        "The card as its holder sees it (the social security number masked); audited.",
    )

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

    freeze = _on_card(
        _write("/{card_id:uuid}/freeze", "AdminFreezeCard"),
        "freeze",
        CardService.freeze,
    )
    unfreeze = _on_card(
        _write("/{card_id:uuid}/unfreeze", "AdminUnfreezeCard"),
        "unfreeze",
        CardService.unfreeze,
        "Lift a freeze, the holder's or the card service's (the holder may lift only their own).",
    )
    close = _on_card(
        _write("/{card_id:uuid}/close", "AdminCloseCard"),
        "close",
        CardService.close,
        """Close the card; its e-purse balance is refunded after the offline settlement window
        (``refund_due_at``), less the taps uploaded meanwhile.""",
    )
