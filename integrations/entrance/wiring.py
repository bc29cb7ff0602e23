"""How the catalogue, the home and the inbox plug into the shell (``backend/wiring.py``).

``EntranceRuntime(resources, connectors=..., identity=..., cards=...)``: the three callables give
the other domains' services once their lifespans have run (integrations' connectors, identity's
services, card's ``CardService``). Named dependency ``entrance``; routes ``/api/v1/home``,
``/api/v1/services``, ``/api/v1/messages``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from identity.auth import Principal
from integrations._db import Pool
from integrations.catalogue.store import Catalogue
from integrations.connectors.city import Application
from integrations.entrance.home import Entrance, card_source
from integrations.entrance.routes import HomeController, ServicesController
from integrations.entrance.subjects import Subjects
from integrations.messages.applications import record_statuses
from integrations.messages.routes import MessagesController
from integrations.wiring import Connectors

__all__ = ["EntranceRuntime"]


class _Resources(Protocol):  # backend.app.Resources, without importing the shell
    @property
    def settings(self) -> Any: ...
    @property
    def pool(self) -> Pool: ...


class EntranceRuntime:
    def __init__(
        self,
        resources: _Resources,
        *,
        connectors: Callable[[], Connectors],
        identity: Callable[[], Any],
        cards: Callable[[], Any],
    ) -> None:
        self._resources = resources
        self._connectors = connectors
        self._identity = identity
        self._cards = cards
        self._entrance: Entrance | None = None

    @property
    def entrance(self) -> Entrance:
        if self._entrance is None:
            raise RuntimeError("the entrance is not open (outside the app's lifespan)")
        return self._entrance

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        pool = self._resources.pool
        settings = self._resources.settings.integrations.entrance

        async def applications_seen(principal: Principal, found: tuple[Application, ...]) -> None:
            await record_statuses(pool, principal.account_id, found)

        self._entrance = Entrance(
            pool=pool,
            catalogue=Catalogue(pool, refresh=settings.catalogue_refresh),
            connectors=self._connectors,
            subjects=Subjects(self._identity),
            card=card_source(pool, self._cards),
            settings=settings,
            applications_seen=applications_seen,
        )
        try:
            yield
        finally:
            entrance, self._entrance = self._entrance, None
            await entrance.settle()

    def dependencies(self) -> dict[str, Provide]:
        return {"entrance": Provide(lambda: self.entrance, sync_to_thread=False)}

    def route_handlers(self) -> list[ControllerRouterHandler]:
        return [HomeController, ServicesController, MessagesController]
