"""The card's services as one named dependency (``card``), and the request's :class:`Actor`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from card.audit import Actor
from card.devices.service import DeviceService
from card.keys.api import CardKeyStore
from card.lifecycle.service import CardService
from card.settings import CardSettings
from identity.auth import Principal

__all__ = ["CardServices"]

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class CardServices:
    cards: CardService
    devices: DeviceService
    keys: CardKeyStore
    settings: CardSettings
    request_id: Callable[[], str | None]
    development: bool

    def actor(self, principal: Principal, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
        raw_client = connection.headers.get("x-client-id")
        return Actor(
            kind=principal.kind,
            id=str(principal.account_id),
            client_address=connection.client.host if connection.client else None,
            client_id=raw_client if raw_client and _CLIENT_ID.match(raw_client) else None,
            request_id=self.request_id(),
        )
