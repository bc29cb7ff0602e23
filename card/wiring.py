"""How card plugs into the shell: ``CardRuntime(resources, request_id, connectors=, identity=)``
(see ``backend/wiring.py``).

The key store and services are built in card's lifespan (after the shell opened the pool); the key
store generates version 1 of the keys on first start. ``connectors`` and ``identity`` (callables
giving integrations' connectors and identity's services once their lifespans ran) make the
social security and health look-ups (``card.directory``); lifecycle changes reach the holder's
inbox (``card.notices``). Named dependency: ``card`` (:class:`~card.api.services.CardServices`;
its ``keys`` is the :class:`~card.keys.CardKeyStore`). Closing a card refunds its balance through
payments' ``payments`` named dependency (``card.refunds``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from card._db import Pool
from card.api.admin import AdminCardController
from card.api.citizen import (
    CitizenCardController,
    DemoPhoneController,
    DocumentKeysController,
    QrParametersController,
)
from card.api.services import CardServices
from card.applications import ApplicationDirectory
from card.audit import identity_audit_sink
from card.devices.service import DeviceService
from card.directory import ConnectorDirectory, identity_id_numbers
from card.keys.software import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService
from card.notices import inbox_notifier

__all__ = ["CardRuntime", "build_card_services"]


class _Resources(Protocol):  # backend.app.Resources, without importing the shell
    @property
    def settings(self) -> Any: ...
    @property
    def keyring(self) -> Any: ...
    @property
    def pool(self) -> Pool: ...


async def build_card_services(
    pool: Pool,
    settings: Any,
    keyring: Any,
    request_id: Callable[[], str | None] = lambda: None,
    *,
    directory: ApplicationDirectory | None = None,
) -> CardServices:
    """The card services on ``pool`` (also used by the CLI and the demo loader). Without a
    ``directory``, social security and health applications stay pending (``no_directory``)."""
    kek = keyring.get("card-kek")
    keys = SoftwareKeyStore(pool, kek)
    await keys.ensure_initialised()
    audit = identity_audit_sink()
    cards = CardService(
        pool,
        keys,
        settings.card,
        ledger=PaymentsEpurseLedger(),
        audit=audit,
        directory=directory,
        notifier=inbox_notifier(),
    )
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
    def __init__(
        self,
        resources: _Resources,
        request_id: Callable[[], str | None] = lambda: None,
        *,
        connectors: Callable[[], Any] | None = None,
        identity: Callable[[], Any] | None = None,
    ) -> None:
        self._resources = resources
        self._request_id = request_id
        self._directory = (
            ConnectorDirectory(connectors, identity_id_numbers(identity))
            if connectors is not None and identity is not None
            else None
        )
        self._services: CardServices | None = None

    @property
    def services(self) -> CardServices:
        if self._services is None:
            raise RuntimeError("card is not started (outside the app's lifespan)")
        return self._services

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        r = self._resources
        self._services = await build_card_services(
            r.pool, r.settings, r.keyring, self._request_id, directory=self._directory
        )
        try:
            yield
        finally:
            self._services = None

    def route_handlers(self) -> list[ControllerRouterHandler]:
        handlers: list[ControllerRouterHandler] = [
            CitizenCardController,
            QrParametersController,
            DocumentKeysController,
            AdminCardController,
        ]
        if self._resources.settings.is_development:
            handlers.append(DemoPhoneController)
        return handlers

    def dependencies(self) -> dict[str, Provide]:
        return {
            "card": Provide(lambda: self.services, sync_to_thread=False),
        }
