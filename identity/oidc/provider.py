"""The provider's services in one object: the ``oidc`` named dependency."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
from litestar.connection import ASGIConnection

from identity.context import ClientInfo, client_info
from identity.oidc.access import AccessChecker
from identity.oidc.client_auth import ClientAuthenticator
from identity.oidc.clients import ClientStore
from identity.oidc.consent import ConsentStore
from identity.oidc.cors import CorsPolicy
from identity.oidc.dpop import DPoPVerifier
from identity.oidc.grants import GrantStore
from identity.oidc.issuer import TokenIssuer
from identity.oidc.keys import KeyStore
from identity.oidc.org_tokens import OrgTokens
from identity.oidc.pushed import PushedRequests
from identity.oidc.revocation import RevocationCache
from identity.oidc.settings import OidcSettings
from identity.oidc.sso import COOKIE, SsoSession, SsoStore
from identity.services import IdentityServices

__all__ = ["BROWSER_COOKIE", "Provider"]

BROWSER_COOKIE = "citizen_bid"


class Provider:
    def __init__(
        self,
        *,
        settings: OidcSettings,
        issuer: str,
        api_audience: str,
        identity: IdentityServices,
        redis: aioredis.Redis,
        keys: KeyStore,
        clients: ClientStore,
        session_key: bytes,
        pairwise_key: bytes,
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.issuer = issuer
        self.api_audience = api_audience
        self.identity = identity
        self.core = identity.core
        self.redis = redis
        self.keys = keys
        self.clients = clients
        self.http = http
        self.secure_cookies = issuer.startswith("https://")
        self._csrf_key = hmac.new(session_key, b"citizen csrf", hashlib.sha256).digest()
        self.revocations = RevocationCache(redis, ttl=settings.revocation_cache_ttl)
        self.revocations.client_listeners.append(clients.forget)
        self.grants = GrantStore(
            self.core.pool,
            redis,
            self.revocations,
            code_ttl=settings.code_ttl,
            grant_ttl=settings.refresh_token_ttl,
        )
        self.tokens = TokenIssuer(
            keys, settings, issuer=issuer, api_audience=api_audience, pairwise_key=pairwise_key
        )
        self.access = AccessChecker(
            keys, redis, self.revocations, issuer=issuer, algorithm=settings.signing_alg
        )
        self.sso = SsoStore(redis, session_key, ttl=settings.sso_session_ttl)
        self.dpop = DPoPVerifier(redis)
        self.cors = CorsPolicy(redis, clients)
        self.org_tokens = OrgTokens(redis, self.grants.revoke_access_token)
        self.pushed = PushedRequests(
            redis, par_ttl=settings.par_ttl, interaction_ttl=settings.interaction_ttl
        )
        self.consents = ConsentStore(self.core.pool, redis)
        self.client_auth = ClientAuthenticator(
            clients,
            redis,
            issuer=issuer,
            max_age=settings.assertion_max_age,
        )

    def url(self, endpoint: str) -> str:
        return f"{self.issuer}/oidc/{endpoint}"

    # -- browser -----------------------------------------------------------------------------------

    def client_info(
        self, connection: ASGIConnection[Any, Any, Any, Any], client_id: str | None = None
    ) -> ClientInfo:
        info = client_info(connection, self.core.request_id)
        if client_id is not None:
            info = ClientInfo(
                address=info.address,
                client_id=client_id,
                user_agent=info.user_agent,
                request_id=info.request_id,
            )
        return info

    def client_info_for(self, client_id: str) -> ClientInfo:
        return ClientInfo(address="oidc", client_id=client_id, request_id=self.core.request_id())

    async def current_session(self, connection: ASGIConnection[Any, Any, Any, Any]) -> SsoSession | None:
        """The browser's SSO session, if it and the identity session under it are both live."""
        cookie = self.sso.parse_cookie_epoch(connection.cookies.get(COOKIE))
        session = await self.sso.get(cookie[0]) if cookie is not None else None
        if session is None or cookie is None:
            return None
        if cookie[1] != session.epoch:  # a cookie from before the session's last authentication
            return None
        token = self.sso.unseal(session)
        principal = await self.core.sessions.resolve(token) if token else None
        if principal is None or principal.account_id != session.account_id:
            await self.end_session(session.sid, "identity session ended")
            return None
        return session

    def csrf(self, binding: str, browser: str) -> str:
        mac = hmac.new(self._csrf_key, f"csrf|{binding}|{browser}".encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode()

    def csrf_ok(self, binding: str, browser: str | None, presented: str | None) -> bool:
        return bool(browser and presented) and secrets.compare_digest(
            self.csrf(binding, browser or ""), presented or ""
        )

    def cookie_header(self, name: str, value: str, max_age: int) -> str:
        parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
        if self.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)

    # -- ending sessions -------------------------------------------------------------------------

    async def end_session(self, sid: uuid.UUID, reason: str, account_id: uuid.UUID | None = None) -> bool:
        """End an SSO session: its identity session, its grants, and a back-channel logout to its clients."""
        from identity.oidc.logout import notify_backchannel

        ended = await self.sso.end(sid, account_id)
        if ended is None:
            return False
        session, client_ids = ended
        async with self.core.pool.acquire() as conn:
            await self.core.sessions.revoke(conn, session.identity_session_id, reason)
        await self.grants.revoke_where(reason, sid=sid)
        await notify_backchannel(self, session, client_ids)
        return True
