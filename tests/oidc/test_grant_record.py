"""Group commit of grant records (``identity.oidc.grant_record``) on real PostgreSQL: concurrent
authorizations share one INSERT, each returns only once its row is committed, and a failed batch
fails every authorization in it without stopping the next batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest

from identity.oidc.grant_record import GrantRecorder
from identity.oidc.grants import AuthContext
from tests.oidc.conftest import BARE_CLIENT


class _Counting:
    """The recorder's pool, counting its statements."""

    def __init__(self, db: Any) -> None:
        self.db, self.statements = db, 0

    async def execute(self, query: str, *args: Any) -> str:
        self.statements += 1
        result: str = await self.db.execute(query, *args)
        return result


async def _rows(db: Any, gids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    rows = await db.fetch(
        "SELECT id, client_id, account_id, sso_session_id, scopes, expires_at - created_at AS life "
        "FROM identity.oidc_grants WHERE id = any($1::uuid[])",
        gids,
    )
    return {r["id"]: r for r in rows}


async def test_concurrent_authorizations_share_one_commit(db: Any, bare_account: uuid.UUID) -> None:
    pool = _Counting(db)
    recorder = GrantRecorder(pool, grant_ttl=3600)  # type: ignore[arg-type]
    sid = uuid.uuid4()
    ctx = AuthContext(client_id=BARE_CLIENT, scope=("openid", "profile"), account_id=bare_account, sid=sid)
    gids = [uuid.uuid4() for _ in range(50)]
    await asyncio.gather(*(recorder.record(g, ctx) for g in gids))
    assert pool.statements == 1  # all fifty queued before the first flush ran
    rows = await _rows(db, gids)
    assert set(rows) == set(gids)
    row = rows[gids[0]]
    assert (row["client_id"], row["account_id"], row["sso_session_id"]) == (BARE_CLIENT, bare_account, sid)
    assert list(row["scopes"]) == ["openid", "profile"] and row["life"] == dt.timedelta(hours=1)
    # One after another, each is its own batch and is committed when record returns.
    for g in (one := [uuid.uuid4(), uuid.uuid4()]):
        await recorder.record(g, ctx)
        assert g in await _rows(db, [g])
    assert pool.statements == 3 and len(one) == 2


async def test_a_failed_batch_fails_each_of_its_authorizations(db: Any, bare_account: uuid.UUID) -> None:
    recorder = GrantRecorder(db, grant_ttl=3600)
    ctx = AuthContext(client_id=BARE_CLIENT, scope=("openid",), account_id=bare_account)
    twice = uuid.uuid4()
    outcomes = await asyncio.gather(
        recorder.record(twice, ctx), recorder.record(twice, ctx), return_exceptions=True
    )
    assert all(isinstance(o, asyncpg.UniqueViolationError) for o in outcomes)
    assert await _rows(db, [twice]) == {}
    later = uuid.uuid4()
    await recorder.record(later, ctx)  # the next batch is written
    assert later in await _rows(db, [later])
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await recorder.record(uuid.uuid4(), AuthContext(client_id="no-such-client", scope=("openid",)))


async def test_each_row_keeps_its_own_lifetime(db: Any, bare_account: uuid.UUID) -> None:
    """A grant that ends with its SSO session is recorded with the shorter lifetime, in the same
    batch as grants with the full one."""
    recorder = GrantRecorder(db, grant_ttl=3600)
    ctx = AuthContext(client_id=BARE_CLIENT, scope=("openid",), account_id=bare_account)
    full, short = uuid.uuid4(), uuid.uuid4()
    await asyncio.gather(recorder.record(full, ctx), recorder.record(short, ctx, 90))
    rows = await _rows(db, [full, short])
    assert rows[full]["life"] == dt.timedelta(hours=1)
    assert rows[short]["life"] == dt.timedelta(seconds=90)
