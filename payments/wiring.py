"""The payments domain's part of the app: the ``payments`` named dependency and its routes.

``backend/wiring.py`` adds one block with :class:`PaymentsRuntime`. The lifespan ensures the
platform's ledger accounts, opens one HTTP client for the channel connectors and runs the top-up
sweep every ``sweep_interval`` seconds (one worker per interval: a Redis ``SET NX`` lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from payments.channels import build_connectors
from payments.channels.config import channel_configs
from payments.clearing.suspense_api import SuspenseController
from payments.demo import ensure_platform_accounts
from payments.settings import PaymentsSettings
from payments.topup.api import NotificationController, TopupController
from payments.topup.service import TopupService

__all__ = ["PaymentsRuntime"]

_log = logging.getLogger(__name__)
SWEEP_LOCK = "payments:topup-sweep"


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
            sweeper = (
                asyncio.create_task(self._sweep_forever(section.sweep_interval), name="payments-sweep")
                if section.sweep_interval > 0
                else None
            )
            try:
                yield
            finally:
                if sweeper is not None:
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper
                self._service = None

    async def _sweep_forever(self, interval: int) -> None:
        """``TopupService.sweep`` every ``interval`` seconds, by one worker of all (Redis lock)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self._resources.redis.set(SWEEP_LOCK, "1", nx=True, ex=max(1, interval - 1)):
                    counts = await self.service.sweep()
                    if any(counts.values()):
                        _log.info("payments sweep", extra={"counts": counts})
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the next interval tries again
                _log.exception("payments sweep failed; next try in %s s", interval)

    def dependencies(self) -> dict[str, Provide]:
        return {"payments": Provide(lambda: self.service, sync_to_thread=False)}

    def route_handlers(self) -> list[ControllerRouterHandler]:
        return [TopupController, NotificationController, SuspenseController]
