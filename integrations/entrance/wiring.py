"""How the catalogue, the home and the inbox plug into the shell (``backend/wiring.py``).

``EntranceRuntime(resources, connectors=..., identity=...)``: the two callables give the other
domains' services once their lifespans have run (integrations' connectors, identity's services).
Named dependency ``entrance``; routes ``/api/v1/home``, ``/api/v1/services``, ``/api/v1/messages``,
``/api/v1/health`` (hospital slots and booking).
The lifespan also listens for ``NOTIFY citizen_home`` (``integrations.entrance.glance``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from identity.auth import Principal
from integrations._db import Pool
from integrations.catalogue.store import Catalogue
from integrations.connectors.city import Application
from integrations.entrance.appointments import AppointmentsController
from integrations.entrance.glance import Glances, HomeInvalidations
from integrations.entrance.home import Entrance
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
    @property
    def redis(self) -> aioredis.Redis: ...


class EntranceRuntime:
    def __init__(
        self,
        resources: _Resources,
        *,
        connectors: Callable[[], Connectors],
        identity: Callable[[], Any],
    ) -> None:
        self._resources = resources
        self._connectors = connectors
        self._identity = identity
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

        glances = Glances(pool, self._resources.redis)
        # A connection of its own (not the pool's): it stays open, listening.
        invalidations = HomeInvalidations(self._listener_connection, glances)
        await invalidations.start()
        self._entrance = Entrance(
            catalogue=Catalogue(pool, refresh=settings.catalogue_refresh),
            connectors=self._connectors,
            subjects=Subjects(self._identity),
            glances=glances,
            redis=self._resources.redis,
            settings=settings,
            applications_seen=applications_seen,
        )
        try:
            yield
        finally:
            entrance, self._entrance = self._entrance, None
            await entrance.settle()
            await invalidations.stop()

    async def _listener_connection(self) -> Any:
        import asyncpg

        url = self._resources.settings.database.url
        return await asyncpg.connect(url.reveal(), server_settings={"application_name": "citizen-home"})

    def dependencies(self) -> dict[str, Provide]:
        return {"entrance": Provide(lambda: self.entrance, sync_to_thread=False)}

    def route_handlers(self) -> list[ControllerRouterHandler]:
        return [HomeController, ServicesController, MessagesController, AppointmentsController]
