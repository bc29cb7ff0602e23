"""Group commit for grant records: concurrent authorizations share one INSERT and one commit.

Every code the authorization endpoint issues starts a grant, and its row in
``identity.oidc_grants`` (how consent revocation, logout and the person's listings find it) must
be committed before the code leaves: a grant PostgreSQL does not know could not be revoked. Each
authorization waits for the commit that carries its row, as before; while one INSERT is in
flight the next authorizations queue, and the next INSERT takes all of them, so under load
PostgreSQL writes and commits once per batch instead of once per authorization. Nothing is
answered before its row is committed, so nothing acknowledged lives only in this process.

Each row carries its own lifetime (``expires_at``): the full refresh lifetime, or less for a grant
that ends with its SSO session (no ``offline_access``, see ``GrantStore.lifetime``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from identity._db import Pool

if TYPE_CHECKING:
    from identity.oidc.grants import AuthContext

__all__ = ["GrantRecorder"]

_INSERT = """
INSERT INTO identity.oidc_grants (id, client_id, account_id, sso_session_id, scopes, expires_at)
SELECT g.id, g.client_id, g.account_id, g.sid, string_to_array(g.scopes, ' '),
       now() + make_interval(secs => g.ttl)
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::float8[])
     AS g(id, client_id, account_id, sid, scopes, ttl)
"""
_Row = tuple[uuid.UUID, str, uuid.UUID | None, uuid.UUID | None, str, float]


class GrantRecorder:
    def __init__(self, pool: Pool, *, grant_ttl: int, max_batch: int = 1000) -> None:
        self._pool = pool
        self._ttl = float(grant_ttl)
        self._max_batch = max_batch
        self._queue: list[tuple[_Row, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, gid: uuid.UUID, ctx: AuthContext, ttl: float | None = None) -> None:
        """Return once the grant's row is committed (the batch's error if it failed). ``ttl``: the
        grant's lifetime in seconds from now, by default the full one (``grant_ttl``)."""
        lifetime = self._ttl if ttl is None else float(ttl)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Scopes travel as one space-joined string: a scope token has no spaces (RFC 6749 §3.3),
        # and unnest() over a text[][] would flatten it.
        row = (gid, ctx.client_id, ctx.account_id, ctx.sid, " ".join(ctx.scope), lifetime)
        self._queue.append((row, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                taken, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                columns = list(zip(*(row for row, _ in taken), strict=True))
                try:
                    await self._pool.execute(_INSERT, *columns)
                except Exception as exc:  # noqa: BLE001 - every authorization in the batch gets it
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in taken:
                    if not future.done():  # (its request may have gone: the row stays, unused)
                        future.set_result(None)
        finally:
            self._flusher = None
