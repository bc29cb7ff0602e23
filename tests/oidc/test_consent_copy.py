"""Consent's Redis copy (``identity.oidc.consent``) over real PostgreSQL and Redis: it answers as
PostgreSQL does, a fill that read PostgreSQL before a change is not written, losing the copy loses
nothing, and a revocation retried after its Redis step failed still drops the copy."""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis

from identity.oidc.consent import ConsentStore
from tests.oidc.conftest import BARE_CLIENT as CLIENT


async def _in_postgres(db: Any, account: uuid.UUID) -> list[str] | None:
    row = await db.fetchval(
        "SELECT scopes FROM identity.oidc_consents WHERE account_id = $1 AND client_id = $2", account, CLIENT
    )
    return None if row is None else list(row)


async def test_the_copy_answers_as_postgresql_does(
    db: Any, redis_client: aioredis.Redis, bare_account: uuid.UUID
) -> None:
    store, account = ConsentStore(db, redis_client), bare_account
    assert not await store.covers(account, CLIENT, ("openid",))  # a miss: PostgreSQL, then "!" kept
    assert await redis_client.hget(f"oidc:consent:{account}", CLIENT) == b"!"
    assert not await store.covers(account, CLIENT, ("openid",))  # from the copy
    await store.grant(account, CLIENT, ("openid", "profile"))
    assert await redis_client.hget(f"oidc:consent:{account}", CLIENT) is None  # dropped by the change
    assert await store.covers(account, CLIENT, ("openid", "profile"))
    assert await redis_client.hget(f"oidc:consent:{account}", CLIENT) == b"=openid profile"
    assert await store.covers(account, CLIENT, ("profile",))
    assert not await store.covers(account, CLIENT, ("openid", "phone"))  # more than was granted
    assert await store.revoke(account, CLIENT)
    assert await _in_postgres(db, account) is None
    assert not await store.covers(account, CLIENT, ("openid",))
    await redis_client.flushdb()  # the copy lost: PostgreSQL answers again
    await store.grant(account, CLIENT, ("openid",))
    await redis_client.flushdb()
    assert await store.covers(account, CLIENT, ("openid",))


async def test_a_fill_that_read_before_a_revocation_is_not_written(
    db: Any, redis_client: aioredis.Redis, bare_account: uuid.UUID
) -> None:
    store, account = ConsentStore(db, redis_client), bare_account
    await store.grant(account, CLIENT, ("openid",))
    key = f"oidc:consent:{account}"
    # A reader saw no copy at version v and read the consent from PostgreSQL ...
    seen = await redis_client.hget(key, "~v")
    version = seen.decode() if isinstance(seen, bytes) else (seen or "")
    assert await _in_postgres(db, account) == ["openid"]
    # ... then the person revoked it (PostgreSQL, then the copy's version moved) ...
    assert await store.revoke(account, CLIENT)
    # ... and the reader's fill, carrying the version it saw, is refused.
    filled = await store._fill(keys=[key], args=[version, CLIENT, "=openid", 60])
    assert filled == 0
    assert await redis_client.hget(key, CLIENT) is None
    assert not await store.covers(account, CLIENT, ("openid",))
    # A fill with the current version is written (the normal miss).
    assert await redis_client.hget(key, CLIENT) == b"!"


async def test_a_fill_written_before_the_change_is_dropped_by_it(
    db: Any, redis_client: aioredis.Redis, bare_account: uuid.UUID
) -> None:
    store, account = ConsentStore(db, redis_client), bare_account
    await store.grant(account, CLIENT, ("openid",))
    assert await store.covers(account, CLIENT, ("openid",))  # filled "=openid"
    await db.execute("DELETE FROM identity.oidc_consents")  # the change committed ...
    assert await store.covers(account, CLIENT, ("openid",))  # (the copy, until the change's Redis step)
    assert not await store.revoke(account, CLIENT)  # ... and its Redis step, retried: no row left
    assert not await store.covers(account, CLIENT, ("openid",))
