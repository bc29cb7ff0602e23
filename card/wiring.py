"""How card plugs into the shell: ``CardRuntime(resources, request_id)`` (see ``backend/wiring.py``).

The key store and services are built in card's lifespan (after the shell opened the pool); the key
store generates version 1 of the keys on first start. Named dependencies: ``card``
(:class:`~card.api.services.CardServices`) and ``card_keys`` (:class:`~card.keys.CardKeyStore`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from card._db import Pool
from card.api.admin import AdminCardController
from card.api.citizen import CitizenCardController, DemoPhoneController, QrParametersController
from card.api.services import CardServices
from card.audit import identity_audit_sink
from card.devices.service import DeviceService
from card.keys.software import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService

__all__ = ["CardRuntime", "build_card_services"]


class _Resources(Protocol):  # backend.app.Resources, without importing the shell
    @property
    def settings(self) -> Any: ...
    @property
    def keyring(self) -> Any: ...
    @property
    def pool(self) -> Pool: ...


async def build_card_services(
    pool: Pool, settings: Any, keyring: Any, request_id: Callable[[], str | None] = lambda: None
) -> CardServices:
    """The card services on ``pool`` (also used by the CLI and the demo loader)."""
    kek = keyring.get("card-kek")
    keys = SoftwareKeyStore(pool, kek)
    await keys.ensure_initialised()
    audit = identity_audit_sink()
    cards = CardService(pool, keys, settings.card, ledger=PaymentsEpurseLedger(), audit=audit)
    devices = DeviceService(
        pool, keys, settings.card, audit=audit, demo_kek=kek if settings.is_development else None
    )
    return CardServices(
        cards=cards,
        devices=devices,
        keys=keys,
        settings=settings.card,
        request_id=request_id,
        development=settings.is_development,
    )


class CardRuntime:
    def __init__(self, resources: _Resources, request_id: Callable[[], str | None] = lambda: None) -> None:
        self._resources = resources
        self._request_id = request_id
        self._services: CardServices | None = None

    @property
    def services(self) -> CardServices:
        if self._services is None:
            raise RuntimeError("card is not started (outside the app's lifespan)")
        return self._services

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        r = self._resources
        self._services = await build_card_services(r.pool, r.settings, r.keyring, self._request_id)
        try:
            yield
        finally:
            self._services = None

    def route_handlers(self) -> list[ControllerRouterHandler]:
        handlers: list[ControllerRouterHandler] = [
            CitizenCardController,
            QrParametersController,
            AdminCardController,
        ]
        if self._resources.settings.is_development:
            handlers.append(DemoPhoneController)
        return handlers

    def dependencies(self) -> dict[str, Provide]:
        return {
            "card": Provide(lambda: self.services, sync_to_thread=False),
            "card_keys": Provide(lambda: self.services.keys, sync_to_thread=False),
        }
