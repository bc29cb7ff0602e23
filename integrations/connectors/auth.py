"""How a connector authenticates: OAuth 2.0 client credentials, an API key, or signed requests.

Client credentials: authlib's ``AsyncOAuth2Client`` is not used. authlib 1.9 imports ``httpx2``
and, without it, falls back to ``httpx`` with an ``AuthlibDeprecationWarning`` (an error in our
tests) and announces the fallback's removal; Litestar's test client needs ``httpx``. The grant is
small (RFC 6749 §4.4): ``ClientCredentials`` posts it with HTTP Basic client authentication
(§2.3.1), keeps the token in the process until shortly before it expires, fetches it once for
concurrent callers, and forgets it on a 401 so the call is retried once with a new one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx
import msgspec

from integrations.credentials import CLIENT_ID, sign
from integrations.registries import UpstreamMalformed, UpstreamRejected, UpstreamUnavailable

__all__ = ["ApiKey", "Auth", "ClientCredentials", "SignedRequests"]


class Auth(Protocol):
    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        """Add the credentials to ``request`` (may call the upstream's token endpoint)."""

    def refresh(self) -> bool:
        """After a 401: forget cached credentials; True if a second try can succeed."""


class ApiKey:
    def __init__(self, key: str, header: str = "X-Api-Key") -> None:
        self._key = key
        self._header = header

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        request.headers[self._header] = self._key

    def refresh(self) -> bool:
        return False


class SignedRequests:
    """HMAC over method, path and query, timestamp and body hash (``integrations.credentials``)."""

    def __init__(self, key: str, client_id: str = CLIENT_ID) -> None:
        self._key = key
        self._client_id = client_id

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        timestamp = str(int(time.time()))
        target = request.url.raw_path.decode("ascii")
        signature = sign(self._key, request.method, target, timestamp, request.content)
        request.headers["X-Citizen-Client"] = self._client_id
        request.headers["X-Citizen-Timestamp"] = timestamp
        request.headers["X-Citizen-Signature"] = signature

    def refresh(self) -> bool:
        return False


class _TokenResponse(msgspec.Struct, frozen=True):
    access_token: str
    token_type: str
    expires_in: int = 300


_token_decoder = msgspec.json.Decoder(_TokenResponse)


class ClientCredentials:
    def __init__(
        self,
        token_url: str,
        client_secret: str,
        client_id: str = CLIENT_ID,
        scope: str | None = None,
        margin: float = 30.0,
    ) -> None:
        self._token_url = token_url
        self._client = (client_id, client_secret)
        self._scope = scope
        self._margin = margin
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        token = self._token
        if token is None or time.monotonic() >= self._expires:
            token = await self._fetch(client, stale=token)
        request.headers["Authorization"] = f"Bearer {token}"

    def refresh(self) -> bool:
        self._token = None
        return True

    async def _fetch(self, client: httpx.AsyncClient, stale: str | None) -> str:
        async with self._lock:
            if self._token is not None and self._token != stale and time.monotonic() < self._expires:
                return self._token  # another caller fetched it while we waited
            form = {"grant_type": "client_credentials"}
            if self._scope:
                form["scope"] = self._scope
            try:
                response = await client.post(self._token_url, data=form, auth=self._client)
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"token endpoint: {exc.__class__.__name__}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise UpstreamUnavailable(f"token endpoint answered {response.status_code}")
            if response.status_code != 200:
                raise UpstreamRejected(f"token endpoint refused our client ({response.status_code})")
            try:
                answer = _token_decoder.decode(response.content)
            except msgspec.MsgspecError as exc:
                raise UpstreamMalformed(f"token endpoint: {exc}") from None
            if answer.token_type.lower() != "bearer" or not answer.access_token:
                raise UpstreamMalformed(f"token endpoint: unsupported token type {answer.token_type!r}")
            self.tokens_fetched += 1
            self._token = answer.access_token
            self._expires = time.monotonic() + max(0.0, answer.expires_in - self._margin)
            return self._token
