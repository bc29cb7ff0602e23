"""Minting the provider's tokens: access tokens (RFC 9068 JWTs), ID tokens and logout tokens.

Access tokens are always signed with the configured algorithm (the API guard pins it); ID tokens
with the client's registered one. Subjects are public (the account id) or pairwise per sector:
``base64url(HMAC-SHA256(pairwise key, sector || 0x00 || account id))``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

from identity.oidc.clients import API_SCOPE, Client
from identity.oidc.grants import AuthContext
from identity.oidc.jose import half_hash, sign
from identity.oidc.keys import KeyStore
from identity.oidc.settings import OidcSettings

__all__ = ["BACKCHANNEL_EVENT", "TokenIssuer"]

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class TokenIssuer:
    def __init__(
        self, keys: KeyStore, settings: OidcSettings, *, issuer: str, api_audience: str, pairwise_key: bytes
    ) -> None:
        self.keys = keys
        self.settings = settings
        self.issuer = issuer
        self.api_audience = api_audience
        self._pairwise_key = pairwise_key

    def subject(self, client: Client, account_id: uuid.UUID) -> str:
        if client.subject_type != "pairwise":
            return str(account_id)
        sector = (client.sector_identifier or client.client_id).encode()
        mac = hmac.new(self._pairwise_key, sector + b"\x00" + account_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _api_allowed(self, client: Client) -> bool:
        return client.first_party and API_SCOPE in client.scopes

    def _registered(self, client: Client) -> list[str]:
        """The client's resource servers, never the API's audience (registration refuses it; a row
        stored before that rule is not trusted either): that one comes only with the api scope."""
        return [a for a in client.audiences if a != self.api_audience]

    def allowed_audiences(self, client: Client) -> list[str]:
        """Every audience the client may name (RFC 8693 ``audience``/``resource``): itself, its
        registered resource servers, and the API for a first-party client with the api scope."""
        allowed = [client.client_id, *self._registered(client)]
        if self._api_allowed(client):
            allowed.append(self.api_audience)
        return allowed

    def audiences(self, client: Client, scope: tuple[str, ...]) -> list[str]:
        """A token's ``aud``: the API only when the api scope was granted to a first-party client."""
        audiences = [client.client_id, *self._registered(client)]
        if API_SCOPE in scope and self._api_allowed(client):
            audiences.append(self.api_audience)
        return audiences

    async def access_token(
        self,
        client: Client,
        ctx: AuthContext,
        *,
        gid: uuid.UUID | None,
        scope: tuple[str, ...],
        act: dict[str, Any] | None = None,
        subject: str | None = None,
        audience: list[str] | None = None,
        jkt: str | None = None,
        not_after: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``audience``: already checked against what the client may ask for (token exchange);
        ``not_after``: a time (epoch seconds) the token must not outlive."""
        now = int(time.time())
        exp = now + self.settings.access_token_ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject or (self.subject(client, ctx.account_id) if ctx.account_id else client.client_id),
            "aud": audience or self.audiences(client, scope),
            "exp": exp if not_after is None else min(exp, not_after),
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client.client_id,
            "scope": " ".join(scope),
        }
        if gid is not None:
            claims["gid"] = str(gid)
        if ctx.acr:
            claims["acr"] = ctx.acr
        if ctx.auth_time:
            claims["auth_time"] = ctx.auth_time
        if ctx.amr:
            claims["amr"] = list(ctx.amr)
        if ctx.org is not None:
            claims["org"] = str(ctx.org)
            claims["roles"] = list(ctx.roles)
        if act is not None:
            claims["act"] = act
        if jkt is not None:
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6.1: bound to the DPoP key
        token = await sign(self.keys, claims, alg=self.settings.signing_alg, typ="at+jwt")
        return token, claims

    async def id_token(
        self,
        client: Client,
        ctx: AuthContext,
        *,
        nonce: str | None,
        access_token: str | None,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        assert ctx.account_id is not None
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject(client, ctx.account_id),
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + self.settings.id_token_ttl,
            "iat": now,
        }
        if ctx.auth_time is not None:
            claims["auth_time"] = ctx.auth_time
        if nonce is not None:
            claims["nonce"] = nonce
        if ctx.acr:
            claims["acr"] = ctx.acr
        if ctx.amr:
            claims["amr"] = list(ctx.amr)
        if ctx.sid is not None:
            claims["sid"] = str(ctx.sid)
        if access_token is not None:
            claims["at_hash"] = half_hash(access_token, client.id_token_alg)
        if code is not None:
            claims["c_hash"] = half_hash(code, client.id_token_alg)
        if extra:
            claims.update({k: v for k, v in extra.items() if k not in claims})
        return await sign(self.keys, claims, alg=client.id_token_alg, typ="JWT")

    async def logout_token(self, client: Client, *, account_id: uuid.UUID, sid: uuid.UUID) -> str:
        """OpenID Connect Back-Channel Logout §2.4: typ logout+jwt, events, sid, no nonce."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.subject(client, account_id),
            "aud": client.client_id,
            "iat": now,
            "exp": now + 120,
            "jti": secrets.token_urlsafe(16),
            "sid": str(sid),
            "events": {BACKCHANNEL_EVENT: {}},
        }
        return await sign(self.keys, claims, alg=client.id_token_alg, typ="logout+jwt")
