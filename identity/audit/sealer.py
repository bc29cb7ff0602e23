"""Sealing: recorded events (``identity.audit_pending``) are chained into ``identity.audit_log``.

``identity.audit_seal`` (the database function) does one batch under a tried, transaction-scoped
advisory lock, so sealers in any number of processes never wait for each other nor chain an event
twice; a sealer that finds the lock taken returns at once (the holder is sealing). Each app process
runs an :class:`AuditSealer`: woken by :func:`~identity.audit.chain.record` (it seals a moment later,
after the recording transactions have committed, in one batch for all of them) and every
``interval`` seconds besides, for events recorded by other processes (CLI commands, other workers)
or committed after the wake-up. ``citizen audit seal`` runs :func:`seal_all` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from identity._db import Connection, Pool
from identity.audit.chain import on_record

__all__ = ["AuditSealer", "SealResult", "seal", "seal_all"]

log = logging.getLogger("citizen.identity.audit")

BATCH = 1000


class SealResult(msgspec.Struct, frozen=True):
    sealed: int  # -1: another sealer holds the lock
    more: bool  # committed events remain unsealed

    @property
    def busy(self) -> bool:
        return self.sealed < 0


async def seal(connection: Connection, limit: int = BATCH) -> SealResult:
    """One batch: chain at most ``limit`` committed events, oldest recorded first (own transaction:
    call it outside one)."""
    row = await connection.fetchrow("SELECT sealed, more FROM identity.audit_seal($1)", limit)
    assert row is not None
    return SealResult(int(row["sealed"]), bool(row["more"]))


async def seal_all(connection: Connection, *, limit: int = BATCH, patience: float = 30.0) -> int:
    """Chain every event committed before the call (waiting while another sealer holds the lock, at
    most ``patience`` seconds); returns how many this call sealed."""
    total, loop = 0, asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        result = await seal(connection, limit)
        if result.busy:
            if loop.time() > deadline:
                raise TimeoutError("another audit sealer held the lock for too long")
            await asyncio.sleep(0.01)
            continue
        total += result.sealed
        if not result.more:
            return total


class AuditSealer:
    """The process's background sealer (:meth:`running` in the app's lifespan)."""

    def __init__(
        self, pool: Pool, *, interval: float = 1.0, settle: float = 0.01, batch: int = BATCH
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.settle = settle
        self.batch = batch
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Seal soon; callable from any thread (a test's loop may record while the app runs in
        another), as ``asyncio.Event`` is not thread-safe."""
        loop = self._loop
        if loop is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(self._wake.set)

    async def seal_pending(self) -> int:
        """Seal what is committed now; gives up (returns) if another sealer is at it."""
        total = 0
        async with self.pool.acquire() as connection:
            while True:
                result = await seal(connection, self.batch)
                if result.busy:
                    return total
                total += result.sealed
                if not result.more:
                    return total

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            await asyncio.sleep(self.settle)  # let the recording transactions commit; one batch
            try:
                await self.seal_pending()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit sealing failed, retrying in %ss: %s", self.interval, exc)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        unregister = on_record(self.wake)
        task = asyncio.create_task(self.run(), name="identity-audit-sealer")
        try:
            yield
        finally:
            unregister()
            self._loop = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # What the last requests recorded: sealed now rather than by the next process to start.
            try:
                await asyncio.wait_for(self.seal_pending(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("audit sealing at shutdown failed (the next sealer will do it): %s", exc)
