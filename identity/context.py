"""Where a request comes from, as recorded with sessions and audit entries."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.connection import ASGIConnection

__all__ = ["SYSTEM", "ClientInfo", "RequestIdGetter", "client_info"]

RequestIdGetter = Callable[[], str | None]
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class ClientInfo(msgspec.Struct, frozen=True, kw_only=True):
    address: str = "unknown"
    client_id: str | None = None  # the calling app ("citizen-app", an OpenID client id, ...)
    user_agent: str | None = None
    request_id: str | None = None


SYSTEM = ClientInfo(address="local", client_id="citizen-cli")


def client_info(connection: ASGIConnection[Any, Any, Any, Any], request_id: RequestIdGetter) -> ClientInfo:
    """The peer address as seen by the server (a proxy's X-Forwarded-For is not trusted here)."""
    raw_client = connection.headers.get("x-client-id")
    agent = connection.headers.get("user-agent")
    return ClientInfo(
        address=connection.client.host if connection.client else "unknown",
        client_id=raw_client if raw_client and _CLIENT_ID.match(raw_client) else None,
        user_agent=agent[:200] if agent else None,
        request_id=request_id(),
    )
