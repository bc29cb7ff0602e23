"""Bearer sessions: opaque tokens (256 random bits) whose SHA-256 keys the session in Redis.

Redis holds what a request needs (one HMGET resolves a token); PostgreSQL keeps the record
(``identity.sessions``) that operators list and that revocation works from. A session hash has the
fields ``p`` (the session as JSON), ``ctx`` (the acting context as JSON) and ``org`` (the organisation
acted for, so that a change to an agent can clear exactly the sessions acting for that organisation).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis

from backend.redis_reads import reads_of
from identity._db import Connection
from identity.auth import Kind, Principal
from identity.context import ClientInfo
from identity.crypto import token_hash
from identity.errors import Unauthenticated

log = logging.getLogger("citizen.identity.sessions")

__all__ = ["INSERT_COLUMNS", "ActingContext", "SessionStore", "StoredSession"]

_PREFIX = "identity:session:"
# The columns of identity.sessions that a new session fills, in the order of record_params().
INSERT_COLUMNS = (
    "id, token_hash, account_id, kind, loa, amr, client_address, client_id, user_agent, created_at,"
    " expires_at"
)

_ROTATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'p', ARGV[1])
return 1
"""
_SET_CONTEXT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '' then redis.call('HDEL', KEYS[1], 'ctx', 'org')
else redis.call('HSET', KEYS[1], 'ctx', ARGV[1], 'org', ARGV[2]) end
return 1
"""
_CLEAR_ORG = """
local n = 0
for _, key in ipairs(KEYS) do
  if ARGV[1] == '*' or redis.call('HGET', key, 'org') == ARGV[1] then
    n = n + redis.call('HDEL', key, 'ctx', 'org')
  end
end
return n
"""


class StoredSession(msgspec.Struct, frozen=True, kw_only=True):
    sid: uuid.UUID
    aid: uuid.UUID
    kind: Kind
    loa: int
    exp: dt.datetime
    amr: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()  # operator roles
    cid: str | None = None


class ActingContext(msgspec.Struct, frozen=True, kw_only=True):
    org: uuid.UUID
    roles: frozenset[str]
    until: dt.datetime | None  # the appointment's end; None for the legal representative


_enc = msgspec.json.Encoder()
_session_dec = msgspec.json.Decoder(StoredSession)
_context_dec = msgspec.json.Decoder(ActingContext)


def _key(digest: bytes) -> str:
    return _PREFIX + digest.hex()


class SessionStore:
    """Also the bearer-token resolver of :class:`identity.auth.Authenticator`."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        # Called by revoke_all in its transaction (freeze, deactivation): the OpenID provider
        # revokes the account's grants there, so refresh tokens need no account check per use.
        self.revoke_all_hooks: list[Callable[[Connection, uuid.UUID, str], Awaitable[object]]] = []
        # Ends OpenID provider grants by id (the provider's GrantStore.revoke, plugged in by its
        # wiring): a provider access token's session id is its grant's, so signing out with one
        # ends the grant. Empty when the provider is not running.
        self.grant_revokers: list[Callable[[list[uuid.UUID], str], Awaitable[int]]] = []
        # Called by clear_context after the account lost (some of) its roles in an organisation:
        # the provider revokes the organisation access tokens it issued the account by token
        # exchange, which carry the roles of the moment they were issued (``identity.oidc.org_tokens``).
        self.context_hooks: list[Callable[[uuid.UUID, uuid.UUID | None], Awaitable[object]]] = []
        self._rotate = redis.register_script(_ROTATE)
        self._set_context = redis.register_script(_SET_CONTEXT)
        self._clear_org = redis.register_script(_CLEAR_ORG)

    async def resolve(self, token: str) -> Principal | None:
        # The lean connection when the app has one (backend.redis_reads): every request does this.
        raw, ctx_raw = await reads_of(self._redis).call("HMGET", _key(token_hash(token)), "p", "ctx")
        if raw is None:
            return None
        s = _session_dec.decode(raw)
        now = dt.datetime.now(dt.UTC)
        if s.exp <= now:
            return None
        acting_for, org_roles = None, frozenset[str]()
        if ctx_raw is not None:
            ctx = _context_dec.decode(ctx_raw)
            if ctx.until is None or ctx.until > now:
                acting_for, org_roles = ctx.org, ctx.roles
        return Principal(
            account_id=s.aid,
            kind=s.kind,
            loa=s.loa,
            session_id=s.sid,
            expires_at=s.exp,
            acting_for=acting_for,
            org_roles=org_roles,
            operator_roles=s.roles,
            amr=s.amr,
            client_id=s.cid,
        )

    @staticmethod
    def new(
        *,
        account_id: uuid.UUID,
        kind: Kind,
        loa: int,
        amr: tuple[str, ...],
        ttl: int,
        client: ClientInfo,
        operator_roles: frozenset[str] = frozenset(),
    ) -> tuple[str, bytes, StoredSession]:
        """A new token, its digest and the session it opens (not recorded nor published yet)."""
        token = secrets.token_urlsafe(32)
        session = StoredSession(
            sid=uuid.uuid4(),
            aid=account_id,
            kind=kind,
            loa=loa,
            exp=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl),
            amr=amr,
            roles=operator_roles,
            cid=client.client_id,
        )
        return token, token_hash(token), session

    @staticmethod
    def record_params(digest: bytes, session: StoredSession, client: ClientInfo, ttl: int) -> tuple[Any, ...]:
        """The values of :data:`INSERT_COLUMNS` for ``session``."""
        return (
            session.sid,
            digest,
            session.aid,
            session.kind,
            session.loa,
            list(session.amr),
            client.address,
            client.client_id,
            client.user_agent,
            session.exp - dt.timedelta(seconds=ttl),
            session.exp,
        )

    async def publish(self, digest: bytes, session: StoredSession, ttl: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            _ = pipe.hset(_key(digest), "p", _enc.encode(session))  # queued, not awaited
            _ = pipe.expire(_key(digest), ttl)
            await pipe.execute()

    async def unpublish(self, digest: bytes) -> None:
        await self._redis.delete(_key(digest))

    async def create(
        self,
        connection: Connection,
        *,
        account_id: uuid.UUID,
        kind: Kind,
        loa: int,
        amr: tuple[str, ...],
        ttl: int,
        client: ClientInfo,
        operator_roles: frozenset[str] = frozenset(),
    ) -> tuple[str, StoredSession]:
        """Record the session (in the caller's transaction) and publish it to Redis."""
        token, digest, session = self.new(
            account_id=account_id,
            kind=kind,
            loa=loa,
            amr=amr,
            ttl=ttl,
            client=client,
            operator_roles=operator_roles,
        )
        await connection.execute(
            f"INSERT INTO identity.sessions ({INSERT_COLUMNS})"  # noqa: S608 - constants only
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            *self.record_params(digest, session, client, ttl),
        )
        await self.publish(digest, session, ttl)
        return token, session

    async def raise_level(
        self, connection: Connection, principal: Principal, token: str, *, loa: int, amr: tuple[str, ...]
    ) -> str:
        """Step-up: a new token (ASVS 7.2.4) for the same session, at a higher level."""
        new_token = secrets.token_urlsafe(32)
        new_digest = token_hash(new_token)
        session = StoredSession(
            sid=principal.session_id,
            aid=principal.account_id,
            kind=principal.kind,
            loa=loa,
            exp=principal.expires_at,
            amr=amr,
            roles=principal.operator_roles,
            cid=principal.client_id,
        )
        updated = await connection.execute(
            """
            UPDATE identity.sessions SET token_hash = $2, loa = $3, amr = $4
            WHERE id = $1 AND revoked_at IS NULL
            """,
            principal.session_id,
            new_digest,
            loa,
            list(amr),
        )
        moved = await self._rotate(
            keys=[_key(token_hash(token)), _key(new_digest)], args=[_enc.encode(session)]
        )
        if updated != "UPDATE 1" or not moved:
            raise Unauthenticated("the session ended meanwhile")
        return new_token

    async def set_context(self, token: str, context: ActingContext | None) -> bool:
        if context is None:
            return bool(await self._set_context(keys=[_key(token_hash(token))], args=["", ""]))
        return bool(
            await self._set_context(
                keys=[_key(token_hash(token))], args=[_enc.encode(context), str(context.org)]
            )
        )

    async def clear_context(
        self, connection: Connection, account_id: uuid.UUID, org: uuid.UUID | None
    ) -> int:
        """Drop the acting context for ``org`` (or any, with None) from the account's live sessions,
        and (through ``context_hooks``) the provider's organisation tokens of the account."""
        digests = await self._live_digests(connection, account_id)
        cleared = 0
        if digests:
            cleared = int(
                await self._clear_org(keys=[_key(d) for d in digests], args=[str(org) if org else "*"])
            )
        # After the sessions (the longer-lived): the change that asked for this has committed, so a
        # hook's failure is logged, not raised; an organisation token it could not revoke ends at
        # its expiry (``access_token_ttl``, minutes).
        for hook in self.context_hooks:
            try:
                await hook(account_id, org)
            except Exception:
                log.exception("a context hook failed for account %s", account_id)
        return cleared

    async def revoke_all(
        self, connection: Connection, account_id: uuid.UUID, reason: str, *, keep: uuid.UUID | None = None
    ) -> int:
        """End every live session of the account but ``keep`` (the caller's, after a change of its
        own credentials), and every provider grant through the hooks, in the caller's transaction."""
        rows = await connection.fetch(
            """
            UPDATE identity.sessions SET revoked_at = now(), revoked_reason = $2
            WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > now()
              AND id IS DISTINCT FROM $3
            RETURNING token_hash
            """,
            account_id,
            reason,
            keep,
        )
        if rows:
            await self._redis.delete(*[_key(r["token_hash"]) for r in rows])
        for hook in self.revoke_all_hooks:
            await hook(connection, account_id, reason)
        return len(rows)

    async def revoke_grant(self, grant_id: uuid.UUID, reason: str) -> int | None:
        """End one provider grant; how many ended (0 if it was not live), None with no provider."""
        if not self.grant_revokers:
            return None
        return sum([await revoke([grant_id], reason) for revoke in self.grant_revokers])

    async def revoke(self, connection: Connection, session_id: uuid.UUID, reason: str) -> uuid.UUID | None:
        """End one session; returns its account id, or None if it was not live."""
        row = await connection.fetchrow(
            """
            UPDATE identity.sessions SET revoked_at = now(), revoked_reason = $2
            WHERE id = $1 AND revoked_at IS NULL
            RETURNING token_hash, account_id
            """,
            session_id,
            reason,
        )
        if row is None:
            return None
        await self._redis.delete(_key(row["token_hash"]))
        account_id: uuid.UUID = row["account_id"]
        return account_id

    @staticmethod
    async def _live_digests(connection: Connection, account_id: uuid.UUID) -> list[bytes]:
        rows = await connection.fetch(
            """
            SELECT token_hash FROM identity.sessions
            WHERE account_id = $1 AND revoked_at IS NULL AND expires_at > now()
            """,
            account_id,
        )
        return [r["token_hash"] for r in rows]
