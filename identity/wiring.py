"""How identity plugs into the shell: ``IdentityRuntime(resources, registries).parts()``.

The services are built in identity's lifespan (after the shell has opened the pool and Redis), and
the :class:`~identity.auth.Authenticator` is put in ``app.state`` for the guards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from identity._db import Pool
from identity.admin.routes import AdminController, OperatorSignInController
from identity.audit import AuditSealer
from identity.auth import APP_STATE_KEY, Authenticator, provide_principal
from identity.context import RequestIdGetter
from identity.core import IdentityCore
from identity.dev import dev_sms
from identity.organisations.routes import OrganisationController, SessionContextController
from identity.persons.routes import AccountController, SignInController
from identity.services import IdentityServices
from identity.settings import IdentitySettings
from identity.sms import DevelopmentSmsGateway, SmsGateway
from integrations.registries import EnterpriseRegistry, PopulationRegistry

__all__ = ["IdentityRuntime", "Registries"]

log = logging.getLogger("citizen.identity")


class Registries(Protocol):
    @property
    def population(self) -> PopulationRegistry: ...
    @property
    def enterprise(self) -> EnterpriseRegistry: ...


class _Resources(Protocol):  # backend.app.Resources, without importing the shell
    @property
    def settings(self) -> Any: ...
    @property
    def keyring(self) -> Any: ...
    @property
    def pool(self) -> Pool: ...
    @property
    def redis(self) -> aioredis.Redis: ...


def build_core(
    *,
    pool: Pool,
    redis: aioredis.Redis,
    settings: IdentitySettings,
    keyring: Any,
    registries: Registries,
    development: bool,
    request_id: RequestIdGetter = lambda: None,
    sms: SmsGateway | None = None,
) -> IdentityCore:
    if sms is None:
        if settings.sms_gateway != "development":
            raise RuntimeError(f"unknown SMS gateway {settings.sms_gateway!r}")
        if not development:
            log.warning("the development SMS gateway is in use: messages are recorded, not sent")
        sms = DevelopmentSmsGateway(redis, settings.sms_log_size)
    return IdentityCore(
        pool=pool,
        redis=redis,
        settings=settings,
        pii_key=keyring.get("pii-encryption"),
        index_key=keyring.get("pii-index"),
        otp_key=keyring.get("otp"),
        population=registries.population,
        enterprise=registries.enterprise,
        sms=sms,
        request_id=request_id,
        development=development,
    )


class IdentityRuntime:
    def __init__(
        self,
        resources: _Resources,
        registries: Callable[[], Registries],
        request_id: RequestIdGetter = lambda: None,
    ) -> None:
        self._resources = resources
        self._registries = registries
        self._request_id = request_id
        self._services: IdentityServices | None = None

    @property
    def services(self) -> IdentityServices:
        if self._services is None:
            raise RuntimeError("identity is not started (outside the app's lifespan)")
        return self._services

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        r = self._resources
        core = build_core(
            pool=r.pool,
            redis=r.redis,
            settings=r.settings.identity,
            keyring=r.keyring,
            registries=self._registries(),
            development=r.settings.is_development,
            request_id=self._request_id,
        )
        self._services = IdentityServices(core)
        app.state[APP_STATE_KEY] = Authenticator([core.sessions])
        sealer = AuditSealer(r.pool, interval=core.settings.audit_seal_interval)
        try:
            async with sealer.running():
                yield
                await core.outbox.settle()  # messages queued by the last requests, while Redis is open
        finally:
            self._services = None

    def route_handlers(self) -> list[ControllerRouterHandler]:
        handlers: list[ControllerRouterHandler] = [
            SignInController,
            AccountController,
            OrganisationController,
            SessionContextController,
            OperatorSignInController,
            AdminController,
        ]
        if self._resources.settings.is_development:
            handlers.append(dev_sms)
        return handlers

    def dependencies(self) -> dict[str, Provide]:
        return {
            "identity": Provide(lambda: self.services, sync_to_thread=False),
            "principal": Provide(provide_principal),
        }
