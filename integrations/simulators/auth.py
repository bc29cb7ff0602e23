"""The three ways the simulated upstreams check who calls them: OAuth 2.0 client credentials,
an API key, or a signed request (``integrations.credentials``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from integrations.credentials import CLIENT_ID, verify_signature
from integrations.simulators.faults import UpstreamState

__all__ = ["Check", "api_key", "error", "oauth", "signed"]

Check = Callable[[Request[Any, Any, Any]], Awaitable[bool]]


def error(status: int, code: str, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"error": code}, status_code=status, headers=headers)


def _basic_client(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def oauth(state: UpstreamState, client_secret: str) -> tuple[HTTPRouteHandler, Check]:
    """A token endpoint (``POST /oauth/token``) and the bearer check of the data endpoints."""

    @post("/oauth/token", operation_id=f"Token_{state.name}", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        client = _basic_client(request.headers.get("authorization"))
        if client is None:
            client = (str(form.get("client_id", "")), str(form.get("client_secret", "")))
        if client[0] != CLIENT_ID or not hmac.compare_digest(client[1], client_secret):
            return error(401, "invalid_client", {"WWW-Authenticate": f'Basic realm="{state.name}"'})
        if form.get("grant_type") != "client_credentials":
            return error(400, "unsupported_grant_type")
        access_token = secrets.token_urlsafe(24)
        ttl = state.faults.token_ttl
        state.tokens[access_token] = asyncio.get_running_loop().time() + ttl
        return Response({"access_token": access_token, "token_type": "Bearer", "expires_in": ttl})

    async def check(request: Request[Any, Any, Any]) -> bool:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return False
        expiry = state.tokens.get(authorization[7:])
        return expiry is not None and expiry > asyncio.get_running_loop().time()

    return token, check


def api_key(key: str, header: str = "x-api-key") -> Check:
    async def check(request: Request[Any, Any, Any]) -> bool:
        return hmac.compare_digest(request.headers.get(header, ""), key)

    return check


def signed(signing_key: str) -> Check:
    async def check(request: Request[Any, Any, Any]) -> bool:
        headers = request.headers
        if headers.get("x-citizen-client") != CLIENT_ID:
            return False
        target = request.scope.get("raw_path", request.url.path.encode()).decode()
        if query := request.scope.get("query_string", b""):
            target += "?" + query.decode()
        return verify_signature(
            signing_key,
            request.method,
            target,
            headers.get("x-citizen-timestamp", ""),
            await request.body(),
            headers.get("x-citizen-signature", ""),
            time.time(),
        )

    return check
