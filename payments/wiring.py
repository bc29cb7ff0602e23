"""The payments domain's part of the app: the ``payments`` named dependency and its routes.

``backend/wiring.py`` adds one block with :class:`PaymentsRuntime`. The lifespan ensures the
platform's ledger accounts, and opens one HTTP client for the channel connectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from payments.channels import build_connectors
from payments.channels.config import channel_configs
from payments.demo import ensure_platform_accounts
from payments.settings import PaymentsSettings
from payments.topup.api import NotificationController, TopupController
from payments.topup.service import TopupService

__all__ = ["PaymentsRuntime"]


class PaymentsRuntime:
    def __init__(self, resources: Any) -> None:
        self._resources = resources
        self._service: TopupService | None = None

    @property
    def service(self) -> TopupService:
        if self._service is None:
            raise RuntimeError("payments is not started (outside the app's lifespan)")
        return self._service

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        r = self._resources
        settings = r.settings
        section: PaymentsSettings = getattr(settings, "payments", PaymentsSettings())
        key = r.keyring.get("simulator") if settings.environment != "production" else None
        await ensure_platform_accounts(r.pool)
        async with httpx.AsyncClient() as client:
            connectors = build_connectors(channel_configs(settings.integrations, key), client)
            self._service = TopupService(
                r.pool, section, connectors, section.notify_base_url or settings.public_url
            )
            try:
                yield
            finally:
                self._service = None

    def dependencies(self) -> dict[str, Provide]:
        return {"payments": Provide(lambda: self.service, sync_to_thread=False)}

    def route_handlers(self) -> list[ControllerRouterHandler]:
        return [TopupController, NotificationController]
