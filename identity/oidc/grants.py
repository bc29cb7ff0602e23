"""Grants and the single-use state behind them, consumed atomically in Redis.

Keys (one Redis; the scripts name keys they derive, which a cluster would not allow):

``oidc:grant:<gid>``    hash {c: client id, d: the authentication context (JSON), rt: SHA-256 of the
                        current refresh token, rf: refresh family id}; TTL = the grant's absolute
                        lifetime (``GrantStore.lifetime``). Deleting it ends every token issued
                        from the grant.
``oidc:rf:<family>``    the grant id of a refresh-token family (a refresh token is ``<family>.<secret>``)
``oidc:code:<sha256>``  an authorization code's record, TTL ≤ 60 s, taken with GETDEL
``oidc:code-used:<sha256>``  the record of a redeemed code, so a second use revokes the grant
``oidc:atrev:<jti>``    an access token revoked on its own (RFC 7009), until it would expire

PostgreSQL keeps ``identity.oidc_grants`` so that consent revocation, logout and account
listings find the grants of a person, a client or an SSO session.

A grant's lifetime, and so that of every refresh token of its family (OpenID Connect Core §11):
with ``offline_access`` in its granted scope, the full refresh lifetime (``refresh_token_ttl``),
so the client keeps access after the person's sign-in has ended; without it, refresh tokens are
still issued (to a client allowed the refresh grant) but the grant lives no longer than the SSO
session it was made in: its Redis TTL and its recorded ``expires_at`` are capped at the session's
remaining life, so its tokens stop when the session expires. Ending a session (logout, another
person's sign-in in that browser, the person ending it) revokes all of its grants, offline or not;
the same person signing in again keeps the session and its grants (``interaction.py``).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
import time
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis

from identity._db import Connection, Pool
from identity.oidc.clients import OFFLINE_ACCESS_SCOPE
from identity.oidc.grant_record import GrantRecorder
from identity.oidc.redis_channel import ScriptChannel
from identity.oidc.revocation import RevocationCache

__all__ = ["AuthContext", "ClaimRequests", "CodeRecord", "Exchanged", "GrantStore", "RefreshOutcome"]

# One member of the OIDC `claims` request (Core §5.5): claim name -> null (asked for, nothing more)
# or an object with `essential`, `value`, `values`. The shape is checked in `request.py`.
ClaimRequests = dict[str, dict[str, Any] | None]

_USED_TTL = 600

# A code exchange in one round trip: take the code (its record moves to code-used, so a second
# use finds it there and the caller revokes the grant), check its bindings, and attach the
# grant's first refresh token if it is live. A code's value is ``<binding><gid><record JSON>``:
# the binding (64 hex digits, ``_binding``) lets Lua compare client, redirect URI, PKCE challenge
# and DPoP key as one string, and the grant id follows at a fixed place, so the script decodes no
# JSON (cjson was a third of its time). ARGV[2] is the binding with the request's DPoP key, ARGV[3]
# the one without any (a code not bound by dpop_jkt is redeemed with or without a proof). The
# bindings are re-checked in Python for the error message; Lua compares them only so that a
# refused request attaches nothing.
_EXCHANGE = """
local v = redis.call('GET', KEYS[1])
if not v then
  local used = redis.call('GET', KEYS[2])
  if used then return {2, used} end
  return {0, ''}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
local b = string.sub(v, 1, 64)
if b ~= ARGV[2] and b ~= ARGV[3] then return {4, v} end
local gid = string.sub(v, 65, 100)
local gk = 'oidc:grant:' .. gid
local ttl = redis.call('PTTL', gk)
if ttl <= 0 then return {3, v} end
if ARGV[4] ~= '' then
  redis.call('HSET', gk, 'rt', ARGV[4], 'rf', ARGV[5])
  redis.call('SET', 'oidc:rf:' .. ARGV[5], gid, 'PX', ttl)
end
return {1, v}
"""
_RECORD_AT = 64 + 36  # the record JSON after the binding and the grant id
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


# A new grant and its code in one round trip (the authorization endpoint), and the client added
# to the SSO session's set (KEYS[3], when given) for back-channel logout.
_START = """
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'd', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
if KEYS[3] then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return 1
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
    claims: ClaimRequests | None = None  # the OIDC `claims` request (userinfo part)
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


class Exchanged(enum.Enum):
    UNKNOWN = 0  # no such code, or expired
    ISSUED = 1  # consumed; the grant is live (and has its refresh token if one was asked for)
    REUSED = 2  # consumed before: the caller revokes the grant
    REVOKED = 3  # consumed now, but the grant was revoked meanwhile
    MISMATCH = 4  # consumed now, but not bound to this client, redirect URI or verifier


_code_dec = msgspec.json.Decoder(CodeRecord)
_ctx_dec = msgspec.json.Decoder(AuthContext)
_enc = msgspec.json.Encoder()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _binding(client_id: str, redirect_uri: str, challenge: str, jkt: str | None) -> str:
    """What a code is bound to, as the exchange script compares it (64 hex digits)."""
    return hashlib.sha256("\0".join((client_id, redirect_uri, challenge, jkt or "")).encode()).hexdigest()


class GrantStore:
    def __init__(
        self,
        pool: Pool,
        redis: aioredis.Redis,
        revocations: RevocationCache,
        *,
        code_ttl: int,
        grant_ttl: int,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.revocations = revocations
        self.code_ttl = code_ttl
        self.grant_ttl = grant_ttl
        self._exchange = redis.register_script(_EXCHANGE)
        self._refresh = redis.register_script(_REFRESH)
        self._bind = redis.register_script(_BIND)
        self._start = redis.register_script(_START)
        self._channel = ScriptChannel(redis)  # the two per-request scripts (exchange, refresh)
        self._recorder = GrantRecorder(pool, grant_ttl=grant_ttl)

    def close(self) -> None:
        self._channel.close()

    async def start(
        self,
        ctx: AuthContext,
        *,
        redirect_uri: str,
        code_challenge: str,
        nonce: str | None,
        sso_clients: tuple[str, int] | None = None,
        session_expires: int | None = None,
    ) -> tuple[uuid.UUID, str]:
        """A new grant (recorded in PostgreSQL, live in Redis) and its authorization code, in one
        Redis round trip: (grant id, code). ``sso_clients``: (key, TTL) of the SSO session's set
        of clients, which gains this one. ``session_expires``: when (Unix time) the SSO session the
        grant is made in ends; without ``offline_access`` the grant ends then too."""
        gid = uuid.uuid4()
        lifetime = self.lifetime(ctx, session_expires)
        # committed (with the other authorizations of the moment)
        await self._recorder.record(gid, ctx, lifetime)
        record = CodeRecord(
            gid=gid,
            client_id=ctx.client_id,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            nonce=nonce,
            ctx=ctx,
        )
        code = secrets.token_urlsafe(32)
        keys = [f"oidc:grant:{gid}", f"oidc:code:{_digest(code)}"]
        if sso_clients is not None:
            keys.append(sso_clients[0])
        args: list[str | bytes | int] = [ctx.client_id, _enc.encode(ctx), lifetime]
        value = _binding(ctx.client_id, redirect_uri, code_challenge, ctx.jkt).encode() + str(gid).encode()
        args += [value + _enc.encode(record), self.code_ttl, sso_clients[1] if sso_clients else 0]
        await self._channel.run(self._start, keys, args)
        return gid, code

    def lifetime(self, ctx: AuthContext, session_expires: int | None, now: float | None = None) -> int:
        """The grant's lifetime in seconds: the full refresh lifetime with ``offline_access``
        granted (or outside any SSO session); else at most the session's remaining life (at least
        a second, so a session ending this instant leaves a grant that ends with it, not an
        EXPIRE of 0 that would read as revoked)."""
        if session_expires is None or OFFLINE_ACCESS_SCOPE in ctx.scope:
            return self.grant_ttl
        remaining = int(session_expires - (time.time() if now is None else now))  # rounded down
        return max(1, min(self.grant_ttl, remaining))

    async def bind_key(self, gid: uuid.UUID, ctx: AuthContext) -> bool:
        """Store ``ctx`` (now carrying its DPoP key) as the live grant's context; False if it ended."""
        return bool(await self._bind(keys=[f"oidc:grant:{gid}"], args=[_enc.encode(ctx)]))

    async def exchange_code(
        self,
        code: str,
        *,
        client_id: str,
        redirect_uri: str,
        challenge: str,
        with_refresh: bool,
        jkt: str | None = None,
    ) -> tuple[Exchanged, CodeRecord | None, str | None]:
        """Consume the code and, if it is bound to these values, start the grant's refresh family."""
        h = _digest(code[:512])
        family, secret = (secrets.token_urlsafe(16), secrets.token_urlsafe(32)) if with_refresh else ("", "")
        status, raw = await self._channel.run(
            self._exchange,
            [f"oidc:code:{h}", f"oidc:code-used:{h}"],
            [
                _USED_TTL,
                _binding(client_id, redirect_uri, challenge, jkt),  # bound by dpop_jkt: only with that key
                _binding(client_id, redirect_uri, challenge, None),
                _digest(secret) if secret else "",
                family,
            ],
        )
        outcome = Exchanged(int(status))
        record = _code_dec.decode(raw[_RECORD_AT:]) if raw else None
        refresh = f"{family}.{secret}" if outcome is Exchanged.ISSUED and with_refresh else None
        return outcome, record, refresh

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
        result = await self._channel.run(
            self._refresh, [f"oidc:rf:{family}"], [_digest(secret), _digest(new_secret), client_id]
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
        await self.revocations.publish(*[f"g:{g}" for g in gids])
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

    async def revoke_account(self, connection: Connection, account_id: uuid.UUID, reason: str) -> int:
        """Every live grant of an account (frozen, deactivated), inside the caller's transaction."""
        rows = await connection.fetch(
            """
            UPDATE identity.oidc_grants SET revoked_at = now(), revoked_reason = $2
            WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > now()
            RETURNING id
            """,
            account_id,
            "account " + reason,
        )
        gids = [r["id"] for r in rows]
        if gids:
            families = await self._families(gids)
            await self.redis.delete(*[f"oidc:grant:{g}" for g in gids], *families)
            await self.revocations.publish(*[f"g:{g}" for g in gids])
        return len(gids)

    async def revoke_access_token(self, jti: str, exp: int) -> None:
        ttl = exp - int(dt.datetime.now(dt.UTC).timestamp())
        if ttl > 0:
            await self.redis.set(f"oidc:atrev:{jti}", b"1", ex=ttl + 5)
            await self.revocations.publish(f"j:{jti}")
