"""``GET /api/v1/home`` (the signed-in citizen's, or their organisation's) and the catalogue,
``GET /api/v1/services`` (public: what the city offers, and whether it works right now)."""

from __future__ import annotations

import re
from typing import Any, cast

import msgspec
from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from identity.auth import authenticate
from identity.errors import Forbidden
from integrations.catalogue.store import Audience, ServiceView, availability_of, search
from integrations.connectors.base import Connector
from integrations.entrance.home import Entrance, Home
from integrations.errors import InvalidQuery, ServiceNotFound
from integrations.wiring import Connectors

__all__ = ["HomeController", "ServiceList", "ServicesController"]

_STOP = re.compile(r"^[A-Za-z0-9-]{1,32}$")


class ServiceList(msgspec.Struct, frozen=True, kw_only=True):
    services: list[ServiceView]


_home = msgspec.json.Encoder()


class HomeController(Controller):
    path = "/api/v1/home"
    tags = ["home"]  # noqa: RUF012

    @get("", operation_id="GetHome")
    async def home(
        self,
        request: Request[Any, Any, Any],
        entrance: NamedDependency[Entrance],
        stop_id: FromQuery[str | None] = None,
    ) -> Response[Home]:
        """Card and balance, unread messages and one tile per service open to you (acting for an
        organisation: its tiles). Each tile carries its own status; the page always answers."""
        # ``requires_person`` done here rather than as a guard (Litestar copies the handler for
        # each guard call) and the principal taken from the request rather than as a second
        # dependency (two are resolved in an anyio task group): both a large share of this page.
        principal = await authenticate(request)
        if not principal.is_person:
            raise Forbidden("this is for citizens' own accounts")
        if stop_id is not None and not _STOP.match(stop_id):
            raise InvalidQuery("stop_id: letters, digits and '-', at most 32")
        page = await entrance.home(principal, stop_id)
        # Encoded here, once, by msgspec; Litestar sends bytes as they are.
        return cast("Response[Home]", Response(_home.encode(page), media_type=MediaType.JSON))


class ServicesController(Controller):
    path = "/api/v1/services"
    tags = ["services"]  # noqa: RUF012

    @get("", operation_id="SearchServices")
    async def search(
        self,
        entrance: NamedDependency[Entrance],
        connectors: NamedDependency[Connectors],
        q: FromQuery[str | None] = None,
        category: FromQuery[str | None] = None,
        audience: FromQuery[Audience | None] = None,
    ) -> ServiceList:
        """Search by name (Chinese or English), summary, category or keyword; every word of ``q``
        must match. ``availability`` is the service's upstream as the circuit breaker sees it."""
        if q is not None and len(q) > 100:
            raise InvalidQuery("q: at most 100 characters")
        found = search(await entrance.catalogue.services(), q, category=category, audience=audience)
        states = await availability_of(found, _by_name(connectors))
        return ServiceList(
            services=[
                ServiceView.of(s, states.get(s.connector, "available") if s.connector else "available")
                for s in found
            ]
        )

    @get("/{service_id:str}", operation_id="GetService")
    async def one(
        self,
        entrance: NamedDependency[Entrance],
        connectors: NamedDependency[Connectors],
        service_id: FromPath[str],
    ) -> ServiceView:
        service = next((s for s in await entrance.catalogue.services() if s.id == service_id), None)
        if service is None:
            raise ServiceNotFound(f"no service {service_id!r} in the catalogue")
        states = await availability_of([service], _by_name(connectors))
        return ServiceView.of(service, states.get(service.connector or "", "available"))


def _by_name(connectors: Connectors) -> dict[str, Connector]:
    return {c.name: c for c in connectors.all}
