"""Checking the provider's access tokens: signature with the pinned algorithm, ``typ at+jwt``,
issuer, expiry, and liveness (its grant exists and the token was not revoked on its own), in one
Redis round trip. Shared by UserInfo, introspection, token exchange and the API's bearer guard."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity.oidc.grants import AuthContext
from identity.oidc.jose import TokenInvalid, verify_own
from identity.oidc.keys import KeyStore

__all__ = ["AccessChecker", "LiveToken"]

_ctx_dec = msgspec.json.Decoder(AuthContext)


class LiveToken(msgspec.Struct, frozen=True):
    claims: dict[str, Any]
    ctx: AuthContext | None  # None for client credentials


class AccessChecker:
    def __init__(self, keys: KeyStore, redis: Any, *, issuer: str, algorithm: str) -> None:
        self.keys = keys
        self.redis = redis
        self.issuer = issuer
        self.algorithm = algorithm

    async def check(self, token: str, audience: str | None = None) -> LiveToken | None:
        try:
            claims = await verify_own(
                self.keys,
                token,
                algorithms=[self.algorithm],
                typ="at+jwt",
                issuer=self.issuer,
                audience=audience,
            )
        except TokenInvalid:
            return None
        jti, gid = claims.get("jti"), claims.get("gid")
        async with self.redis.pipeline(transaction=False) as pipe:
            _ = pipe.exists(f"oidc:atrev:{jti}")
            if gid is not None:
                _ = pipe.hget(f"oidc:grant:{gid}", "d")
            found = await pipe.execute()
        if found[0]:
            return None
        if gid is None:
            return LiveToken(claims, None)
        if found[1] is None:
            return None
        ctx = _ctx_dec.decode(found[1])
        return LiveToken(claims, ctx)

    @staticmethod
    def grant_id(live: LiveToken) -> uuid.UUID | None:
        gid = live.claims.get("gid")
        return uuid.UUID(str(gid)) if gid else None
