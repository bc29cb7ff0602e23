"""Consent: asked once per person, client and set of scopes; listed and revoked by the person.

A request for scopes already granted needs no new consent; a request for more asks for the new set
(``prompt=consent`` always asks). Revoking consent deletes the row and revokes every grant of that
client for the person, so its refresh and access tokens stop working at once.

PostgreSQL holds consent; the authorization endpoint reads it through a Redis copy
(``oidc:consent:<account>``, a hash of client id → ``=<scopes>`` or ``!`` for none), so that a
signed-in person's authorization asks nothing of PostgreSQL but the grant's record. The copy is
filled only on a miss and only if the hash's version (``~v``) is still the one seen before
PostgreSQL was read; every change bumps the version and drops the client's entry after its
commit. A fill that read PostgreSQL before a change therefore either lands before the change's
drop (and is dropped) or finds the version moved (and is not written): a revoked consent is never
served from the copy. Losing Redis loses only the copy.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import redis.asyncio as aioredis

from backend.redis_reads import reads_of
from identity._db import Pool

__all__ = ["ConsentStore", "ConsentView"]


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    client_name: str
    logo_uri: str | None
    scopes: list[str]
    granted_at: dt.datetime
    updated_at: dt.datetime


_COPY_TTL = 24 * 3600
_VERSION = "~v"  # not a client id (client ids are [A-Za-z0-9._:-])

# Fill the copy for one client, unless a change came after the version the reader saw.
_FILL = """
local seen = redis.call('HGET', KEYS[1], '~v') or ''
if seen ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _key(account_id: uuid.UUID) -> str:
    return f"oidc:consent:{account_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ConsentStore:
    def __init__(self, pool: Pool, redis: aioredis.Redis) -> None:
        self.pool = pool
        self.redis = redis
        self._fill = redis.register_script(_FILL)

    async def covers(self, account_id: uuid.UUID, client_id: str, scopes: tuple[str, ...]) -> bool:
        key = _key(account_id)
        cached, version = await reads_of(self.redis).call("HMGET", key, client_id, _VERSION)
        if cached is not None:
            entry = _text(cached)
            granted: list[str] | None = entry[1:].split() if entry.startswith("=") else None
        else:
            row = await self.pool.fetchval(
                "SELECT scopes FROM identity.oidc_consents WHERE account_id = $1 AND client_id = $2",
                account_id,
                client_id,
            )
            granted = None if row is None else list(row)
            entry = "!" if granted is None else "=" + " ".join(granted)
            seen = "" if version is None else _text(version)
            await self._fill(keys=[key], args=[seen, client_id, entry, _COPY_TTL])
        return granted is not None and set(scopes) <= set(granted)

    async def _changed(self, account_id: uuid.UUID, client_id: str) -> None:
        """After a change's commit: a new version (fills that read before it are not written) and
        the client's entry dropped (a fill written before it is gone)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            _ = pipe.hincrby(_key(account_id), _VERSION, 1)
            _ = pipe.hdel(_key(account_id), client_id)
            _ = pipe.expire(_key(account_id), _COPY_TTL)
            await pipe.execute()

    async def grant(self, account_id: uuid.UUID, client_id: str, scopes: tuple[str, ...]) -> None:
        await self.pool.execute(
            """
            INSERT INTO identity.oidc_consents (account_id, client_id, scopes) VALUES ($1, $2, $3)
            ON CONFLICT (account_id, client_id) DO UPDATE
            SET scopes = (SELECT array_agg(DISTINCT s ORDER BY s)
                          FROM unnest(identity.oidc_consents.scopes || excluded.scopes) AS s),
                updated_at = now()
            """,
            account_id,
            client_id,
            sorted(set(scopes)),
        )
        await self._changed(account_id, client_id)

    async def list(self, account_id: uuid.UUID) -> list[ConsentView]:
        rows = await self.pool.fetch(
            """
            SELECT c.client_id, k.name, k.logo_uri, c.scopes, c.granted_at, c.updated_at
            FROM identity.oidc_consents c JOIN identity.oidc_clients k ON k.client_id = c.client_id
            WHERE c.account_id = $1 ORDER BY c.granted_at
            """,
            account_id,
        )
        return [
            ConsentView(
                client_id=r["client_id"],
                client_name=r["name"],
                logo_uri=r["logo_uri"],
                scopes=list(r["scopes"]),
                granted_at=r["granted_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]

    async def revoke(self, account_id: uuid.UUID, client_id: str) -> bool:
        done = await self.pool.execute(
            "DELETE FROM identity.oidc_consents WHERE account_id = $1 AND client_id = $2",
            account_id,
            client_id,
        )
        # Also when there was no row: a revocation whose Redis step failed after the delete is
        # retried by the person, and the retry must still drop the copy.
        await self._changed(account_id, client_id)
        return done == "DELETE 1"
