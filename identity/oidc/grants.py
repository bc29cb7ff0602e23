"""Grants and the single-use state behind them, consumed atomically in Redis.

Keys (one Redis; the scripts name keys they derive, which a cluster would not allow):

``oidc:grant:<gid>``    hash {c: client id, d: the authentication context (JSON), rt: SHA-256 of the
                        current refresh token, rf: refresh family id}; TTL = the grant's absolute
                        lifetime. Deleting it ends every token issued from the grant.
``oidc:rf:<family>``    the grant id of a refresh-token family (a refresh token is ``<family>.<secret>``)
``oidc:code:<sha256>``  an authorization code's record, TTL ≤ 60 s, taken with GETDEL
``oidc:code-used:<sha256>``  the record of a redeemed code, so a second use revokes the grant
``oidc:atrev:<jti>``    an access token revoked on its own (RFC 7009), until it would expire

PostgreSQL keeps ``identity.oidc_grants`` so that consent revocation, logout and account
listings find the grants of a person, a client or an SSO session.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
import uuid

import msgspec
import redis.asyncio as aioredis

from identity._db import Pool

__all__ = ["AuthContext", "CodeRecord", "GrantStore", "Redeemed", "RefreshOutcome"]

_USED_TTL = 600

_REDEEM = """
local v = redis.call('GETDEL', KEYS[1])
if v then
  redis.call('SET', KEYS[2], v, 'EX', ARGV[1])
  return {1, v}
end
local used = redis.call('GET', KEYS[2])
if used then return {2, used} end
return {0, ''}
"""
_ATTACH = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[1], 'rt', ARGV[1], 'rf', ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ttl)
return 1
"""
_REFRESH = """
local gid = redis.call('GET', KEYS[1])
if not gid then return {0, ''} end
local gk = 'oidc:grant:' .. gid
local cur = redis.call('HMGET', gk, 'rt', 'c', 'd')
if not cur[1] then return {0, gid} end
if cur[2] ~= ARGV[3] then return {3, gid} end
if cur[1] ~= ARGV[1] then
  redis.call('DEL', gk, KEYS[1])
  return {2, gid}
end
redis.call('HSET', gk, 'rt', ARGV[2])
return {1, gid, cur[3], redis.call('PTTL', gk)}
"""


_BIND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[1])
return 1
"""


class AuthContext(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who authenticated, how and for what: stored with the grant, read at every refresh."""

    client_id: str
    scope: tuple[str, ...]
    account_id: uuid.UUID | None = None
    sid: uuid.UUID | None = None  # the SSO session
    acr: str | None = None
    amr: tuple[str, ...] = ()
    auth_time: int | None = None
    org: uuid.UUID | None = None  # token exchange: the organisation acted for
    roles: tuple[str, ...] = ()
    claims: dict[str, dict[str, object]] | None = None  # the OIDC `claims` request (userinfo part)
    # DPoP (RFC 9449): the thumbprint of the key the grant's tokens are bound to, from `dpop_jkt`
    # at the authorization request (§10) or from the proof of the first token request.
    jkt: str | None = None


class CodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    gid: uuid.UUID
    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str | None = None
    ctx: AuthContext


class RefreshOutcome(enum.Enum):
    INVALID = 0
    ROTATED = 1
    REUSED = 2
    WRONG_CLIENT = 3


class Redeemed(msgspec.Struct, frozen=True):
    first_use: bool
    record: CodeRecord | None


_code_dec = msgspec.json.Decoder(CodeRecord)
_ctx_dec = msgspec.json.Decoder(AuthContext)
_enc = msgspec.json.Encoder()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class GrantStore:
    def __init__(self, pool: Pool, redis: aioredis.Redis, *, code_ttl: int, grant_ttl: int) -> None:
        self.pool = pool
        self.redis = redis
        self.code_ttl = code_ttl
        self.grant_ttl = grant_ttl
        self._redeem = redis.register_script(_REDEEM)
        self._attach = redis.register_script(_ATTACH)
        self._refresh = redis.register_script(_REFRESH)
        self._bind = redis.register_script(_BIND)

    async def create(self, ctx: AuthContext) -> uuid.UUID:
        gid = uuid.uuid4()
        await self.pool.execute(
            """
            INSERT INTO identity.oidc_grants (id, client_id, account_id, sso_session_id, scopes, expires_at)
            VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
            """,
            gid,
            ctx.client_id,
            ctx.account_id,
            ctx.sid,
            list(ctx.scope),
            float(self.grant_ttl),
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            _ = pipe.hset(f"oidc:grant:{gid}", mapping={"c": ctx.client_id, "d": _enc.encode(ctx)})
            _ = pipe.expire(f"oidc:grant:{gid}", self.grant_ttl)
            await pipe.execute()
        return gid

    async def bind_key(self, gid: uuid.UUID, ctx: AuthContext) -> bool:
        """Store ``ctx`` (now carrying its DPoP key) as the live grant's context; False if it ended."""
        return bool(await self._bind(keys=[f"oidc:grant:{gid}"], args=[_enc.encode(ctx)]))

    async def issue_code(self, record: CodeRecord) -> str:
        code = secrets.token_urlsafe(32)
        await self.redis.set(f"oidc:code:{_digest(code)}", _enc.encode(record), ex=self.code_ttl)
        return code

    async def redeem_code(self, code: str) -> Redeemed:
        """Take the code once; a second use returns its record with ``first_use`` False."""
        h = _digest(code[:512])
        status, raw = await self._redeem(keys=[f"oidc:code:{h}", f"oidc:code-used:{h}"], args=[_USED_TTL])
        if int(status) == 0:
            return Redeemed(False, None)
        return Redeemed(int(status) == 1, _code_dec.decode(raw))

    async def attach_refresh(self, gid: uuid.UUID) -> str | None:
        """A first refresh token for the grant; None if the grant was revoked meanwhile."""
        family, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        ok = await self._attach(
            keys=[f"oidc:grant:{gid}", f"oidc:rf:{family}"], args=[_digest(secret), family, str(gid)]
        )
        return f"{family}.{secret}" if int(ok) else None

    async def is_live(self, gid: uuid.UUID) -> bool:
        return bool(await self.redis.exists(f"oidc:grant:{gid}"))

    async def context(self, gid: uuid.UUID) -> AuthContext | None:
        raw = await self.redis.hget(f"oidc:grant:{gid}", "d")
        return None if raw is None else _ctx_dec.decode(raw)

    async def refresh(
        self, token: str, client_id: str
    ) -> tuple[RefreshOutcome, uuid.UUID | None, AuthContext | None, str | None, int]:
        """Rotate: (outcome, grant id, context, new refresh token, remaining grant lifetime in s)."""
        family, _, secret = token[:256].partition(".")
        if not family or not secret:
            return RefreshOutcome.INVALID, None, None, None, 0
        new_secret = secrets.token_urlsafe(32)
        result = await self._refresh(
            keys=[f"oidc:rf:{family}"], args=[_digest(secret), _digest(new_secret), client_id]
        )
        outcome = RefreshOutcome(int(result[0]))
        gid = uuid.UUID(result[1].decode()) if result[1] else None
        if outcome is not RefreshOutcome.ROTATED:
            return outcome, gid, None, None, 0
        return outcome, gid, _ctx_dec.decode(result[2]), f"{family}.{new_secret}", int(result[3]) // 1000

    async def refresh_lookup(self, token: str) -> tuple[uuid.UUID, AuthContext, int] | None:
        """For introspection: the live grant whose current refresh token this is (no rotation)."""
        family, _, secret = token[:256].partition(".")
        if not family or not secret:
            return None
        found = await self.redis.get(f"oidc:rf:{family}")
        if found is None:
            return None
        gid = found.decode() if isinstance(found, bytes) else str(found)
        key = f"oidc:grant:{gid}"
        async with self.redis.pipeline(transaction=False) as pipe:
            _ = pipe.hmget(key, ["rt", "d"])
            _ = pipe.ttl(key)
            (rt, raw), ttl = await pipe.execute()
        if rt is None or rt.decode() != _digest(secret) or raw is None:
            return None
        return uuid.UUID(gid), _ctx_dec.decode(raw), int(ttl)

    async def revoke(self, gids: list[uuid.UUID], reason: str) -> int:
        """End grants everywhere: Redis first (tokens stop at once), then the record."""
        if not gids:
            return 0
        families = await self._families(gids)
        await self.redis.delete(*[f"oidc:grant:{g}" for g in gids], *families)
        done = await self.pool.execute(
            """
            UPDATE identity.oidc_grants SET revoked_at = now(), revoked_reason = $2
            WHERE id = any($1::uuid[]) AND revoked_at IS NULL
            """,
            gids,
            reason,
        )
        return int(done.split()[-1])

    async def _families(self, gids: list[uuid.UUID]) -> list[str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for g in gids:
                _ = pipe.hget(f"oidc:grant:{g}", "rf")
            found = await pipe.execute()
        return [f"oidc:rf:{f.decode()}" for f in found if f]

    async def revoke_where(
        self,
        reason: str,
        *,
        account_id: uuid.UUID | None = None,
        client_id: str | None = None,
        sid: uuid.UUID | None = None,
    ) -> int:
        rows = await self.pool.fetch(
            """
            SELECT id FROM identity.oidc_grants
            WHERE revoked_at IS NULL AND expires_at > now()
              AND ($1::uuid IS NULL OR account_id = $1)
              AND ($2::text IS NULL OR client_id = $2)
              AND ($3::uuid IS NULL OR sso_session_id = $3)
            """,
            account_id,
            client_id,
            sid,
        )
        return await self.revoke([r["id"] for r in rows], reason)

    async def revoke_access_token(self, jti: str, exp: int) -> None:
        ttl = exp - int(dt.datetime.now(dt.UTC).timestamp())
        if ttl > 0:
            await self.redis.set(f"oidc:atrev:{jti}", b"1", ex=ttl + 5)
