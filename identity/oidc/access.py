"""Checking the provider's access tokens: signature with the pinned algorithm, ``typ at+jwt``,
issuer, expiry, and liveness (its grant exists and the token was not revoked on its own). Shared
by UserInfo, introspection, token exchange and the API's bearer guard.

A resource server introspects or presents the same token many times, so a worker keeps the
outcome of the signature check for the exact string (a bounded FIFO; expiry and audience are
checked every time) and the liveness facts in :class:`RevocationCache`; without them each check
is one ECDSA verification and one Redis round trip."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity.oidc.grants import AuthContext
from identity.oidc.jose import TokenInvalid, check_claims, decode_own
from identity.oidc.keys import KeyStore
from identity.oidc.revocation import RevocationCache

__all__ = ["AccessChecker", "LiveToken"]

_ctx_dec = msgspec.json.Decoder(AuthContext)
_VERIFIED_MAX = 4096  # about 1.5 kB each (the string and its claims)


class LiveToken(msgspec.Struct, frozen=True):
    claims: dict[str, Any]
    ctx: AuthContext | None  # None for client credentials


class AccessChecker:
    def __init__(
        self, keys: KeyStore, redis: Any, revocations: RevocationCache, *, issuer: str, algorithm: str
    ) -> None:
        self.keys = keys
        self.redis = redis
        self.revocations = revocations
        self.issuer = issuer
        self.algorithm = algorithm
        self._verified: dict[str, dict[str, Any]] = {}

    async def _claims(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            claims = await decode_own(self.keys, token, algorithms=[self.algorithm], typ="at+jwt")
            if len(self._verified) >= _VERIFIED_MAX:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[token] = claims
        return claims

    async def check(self, token: str, audience: str | None = None) -> LiveToken | None:
        try:
            claims = await self._claims(token)
            check_claims(claims, issuer=self.issuer, audience=audience, verify_exp=True)
        except TokenInvalid:
            return None
        jti, gid = str(claims.get("jti")), claims.get("gid")
        gid = None if gid is None else str(gid)
        cache = self.revocations
        if cache.jti_live(jti):
            if gid is None:
                return LiveToken(claims, None)
            known, raw = cache.grant(gid)
            if known:
                return None if raw is None else LiveToken(claims, _ctx_dec.decode(raw))
        generation = cache.generation
        async with self.redis.pipeline(transaction=False) as pipe:
            _ = pipe.exists(f"oidc:atrev:{jti}")
            if gid is not None:
                _ = pipe.hget(f"oidc:grant:{gid}", "d")
            found = await pipe.execute()
        if found[0]:
            return None
        raw = found[1] if gid is not None else None
        cache.remember(generation, jti=jti, gid=gid, ctx=raw)
        if gid is None:
            return LiveToken(claims, None)
        if raw is None:
            return None
        return LiveToken(claims, _ctx_dec.decode(raw))

    @staticmethod
    def grant_id(live: LiveToken) -> uuid.UUID | None:
        gid = live.claims.get("gid")
        return uuid.UUID(str(gid)) if gid else None
