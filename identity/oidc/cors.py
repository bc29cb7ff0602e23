"""CORS (the Fetch standard's "CORS protocol") on the endpoints a browser app calls from its own origin.

Single-page and mobile web apps (public clients, code flow with PKCE) call the provider with
``fetch`` from the partner's origin; the browser lets them read an answer only with CORS headers
(draft-ietf-oauth-browser-based-apps, "Cross-Origin Requests"). So, per endpoint, never app-wide:

* Discovery, the RFC 8414 metadata and the JWKS are public documents: ``Access-Control-Allow-Origin:
  *`` (``PUBLIC``), GET, no credentials (``discovery.py``).
* Token and revocation (``endpoint.py``) and userinfo (``userinfo.py``) name a client, so an actual
  request's answer carries ``Access-Control-Allow-Origin: <origin>`` and ``Vary: Origin`` only when
  the origin is allowed for that client (``registration.allowed_origins``): the authenticated client, else
  the one the request names (``client_id``, the Basic user name), for userinfo the client the
  access token was issued to. Errors too (``invalid_grant``, ``invalid_client``, a 401 with its
  challenge), or the app cannot read why it failed. A request naming no client, or an unknown or
  disabled one, is answered as a preflight is.
* A preflight (OPTIONS) has no body, hence no client: its origin is allowed when any active client
  allows it. The browser then sends the actual request, and the answer to that decides (the
  draft's "the authorization server can approve a known origin during the preflight, but reject
  the actual request").
* Never ``Access-Control-Allow-Credentials``: tokens travel in bodies and headers, never in
  cookies, so a cross-origin request never carries the provider's SSO cookie usefully.
* The authorization endpoint, the login and consent pages, logout, PAR and introspection (server
  to server) answer no CORS: the browser navigates to the first ones, and the others have no
  browser caller.

The preflight's set is read from PostgreSQL (``ClientStore.origins_in_use``) and kept in Redis for
``ORIGINS_TTL`` seconds, shared by every worker; registering or disabling a client through the
admin API drops it at once, a client made by the CLI shows up within the TTL.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from urllib.parse import unquote_plus

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from identity.oidc.clients import ClientStore
from identity.oidc.registration import allowed_origins

__all__ = [
    "ORIGINS_KEY",
    "ORIGINS_TTL",
    "PUBLIC",
    "PUBLIC_PREFLIGHT",
    "REVOCATION",
    "TOKEN",
    "USERINFO",
    "CorsPolicy",
    "CorsRoute",
    "client_named",
]

ORIGINS_KEY = "oidc:cors:origins"
GENERATION_KEY = "oidc:cors:generation"  # counts client changes (``forget``)
ORIGINS_TTL = 30  # seconds
# Browsers cap it anyway (Chromium at 2 hours); ten minutes keeps a removed origin's preflight
# approval from lingering in browsers long.
MAX_AGE = "600"
# What a browser app sends: the bearer or DPoP token, the form's type, a DPoP proof (RFC 9449 §4.1).
ALLOW_HEADERS = "Authorization, Content-Type, DPoP"
_PRESENT = ""  # a member of the Redis set whenever it is filled; no Origin header is empty

PUBLIC: dict[str, str] = {"Access-Control-Allow-Origin": "*"}
PUBLIC_PREFLIGHT: dict[str, str] = {
    **PUBLIC,
    "Access-Control-Allow-Methods": "GET",
    "Access-Control-Max-Age": MAX_AGE,
}


class CorsRoute(msgspec.Struct, frozen=True):
    """One credentialed endpoint's CORS: its methods, and the response headers a script may read
    beyond the CORS-safelisted ones."""

    methods: str
    expose: str


TOKEN = CorsRoute("POST", "WWW-Authenticate, Retry-After")  # 401 invalid_client; 429 throttled
REVOCATION = TOKEN
USERINFO = CorsRoute("GET, POST", "WWW-Authenticate")  # RFC 6750 §3: the error is in the challenge


def client_named(headers: Mapping[str, str], form: Mapping[str, str]) -> str | None:
    """The client a token or revocation request names (``client_id``, else the Basic user name,
    form-urlencoded as RFC 6749 §2.3.1 says), authenticated or not."""
    if form.get("client_id"):
        return form["client_id"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(user) or None


def _plausible(origin: str) -> bool:
    # "null" (sandboxed frames, file: pages) is never an allowed origin.
    return origin.startswith(("https://", "http://")) and len(origin) <= 300


class CorsPolicy:
    def __init__(self, redis: aioredis.Redis, clients: ClientStore, *, ttl: int = ORIGINS_TTL) -> None:
        self.redis = redis
        self.clients = clients
        self.ttl = ttl

    async def allowed_for(self, origin: str, client_id: str | None) -> bool:
        """Whether ``origin`` may read the answer to a request of ``client_id`` (None: unknown)."""
        client = await self.clients.get(client_id) if client_id else None
        if client is None:
            return await self.allowed_for_any(origin)
        return origin in allowed_origins(client.web_origins, client.redirect_uris)

    async def allowed_for_any(self, origin: str) -> bool:
        """Whether some active client allows ``origin``: one SMISMEMBER, or a refill of the set."""
        if not _plausible(origin):
            return False
        try:
            filled, member = await self.redis.smismember(ORIGINS_KEY, [_PRESENT, origin])
        except RedisError:  # the set is a cache: PostgreSQL answers without it
            return origin in await self.clients.origins_in_use()
        if filled:
            return bool(member)
        with contextlib.suppress(RedisError):
            generation = await self.redis.get(GENERATION_KEY)
            origins = await self.clients.origins_in_use()
            await self._refill(generation, origins)
            return origin in origins
        return origin in await self.clients.origins_in_use()

    async def _refill(self, generation: bytes | str | None, origins: frozenset[str]) -> None:
        """Write the set read from PostgreSQL, unless a client changed since it was read: ``forget``
        counts every change, and a refill that saw an older count would write a disabled client's
        origin back for the TTL (WATCH makes the check and the write one step)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(GENERATION_KEY)
                if await pipe.get(GENERATION_KEY) != generation:
                    return
                pipe.multi()  # type: ignore[no-untyped-call]
                _ = pipe.delete(ORIGINS_KEY)  # queued, not awaited
                _ = pipe.sadd(ORIGINS_KEY, _PRESENT, *origins)
                _ = pipe.expire(ORIGINS_KEY, self.ttl)
                await pipe.execute()
            except WatchError:  # a change between the check and the write: the next one refills
                return

    async def forget(self) -> None:
        """A client was registered or disabled: the next preflight reads the set again. With Redis
        down the change is committed anyway; the set's TTL bounds how long it is missed."""
        with contextlib.suppress(RedisError):
            async with self.redis.pipeline(transaction=True) as pipe:
                _ = pipe.incr(GENERATION_KEY)
                _ = pipe.delete(ORIGINS_KEY)
                await pipe.execute()

    async def preflight(self, origin: str | None, route: CorsRoute) -> dict[str, str]:
        """The headers of the answer (204) to an OPTIONS request."""
        headers = {"Allow": f"{route.methods}, OPTIONS"}
        if origin is None:
            return headers
        headers["Vary"] = "Origin"
        if await self.allowed_for_any(origin):
            headers |= {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": route.methods,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
            }
        return headers

    async def actual(self, origin: str | None, client_id: str | None, route: CorsRoute) -> dict[str, str]:
        """The CORS headers of the answer to an actual request, error or not; none without Origin
        (a server's request, or the provider's own pages: no cross-origin read to allow)."""
        if origin is None:
            return {}
        if not await self.allowed_for(origin, client_id):
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": route.expose,
            "Vary": "Origin",
        }
