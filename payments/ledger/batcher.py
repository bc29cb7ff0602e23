"""Group commit for single requests: concurrent ``submit`` calls share one ledger batch.

Each API process may hold one ``TransferBatcher``. A request's transfers wait (in memory, in
this process) only until the next batch is written; the request is answered after that batch
has committed, with its own results, so nothing that was acknowledged lives only in memory.
While ``lanes`` batches are being written, new requests accumulate and go together in the
next one, so under load a hot account is locked once per batch instead of once per request.
Requests stay whole and in order inside a batch: a linked chain never spans two requests
(a request whose last transfer is still linked is answered ``linked_event_chain_open`` by the
ledger as usual, because it is sent alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from payments._db import Pool
from payments.ledger.store import create_transfers
from payments.ledger.types import Transfer, TransferFlags, TransferResult

__all__ = ["TransferBatcher"]

_Waiting = tuple[list[Transfer], "asyncio.Future[list[TransferResult]]"]


class TransferBatcher:
    def __init__(self, pool: Pool, *, max_batch: int = 8190, lanes: int = 2) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: list[_Waiting] = []
        self._lanes = asyncio.Semaphore(lanes)
        self._flushers: set[asyncio.Task[None]] = set()

    async def submit(self, transfers: Sequence[Transfer]) -> list[TransferResult]:
        batch = list(transfers)
        if not batch:
            return []
        if batch[-1].flags & TransferFlags.LINKED or len(batch) >= self._max_batch:
            return await create_transfers(self._pool, batch)
        future: asyncio.Future[list[TransferResult]] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, future))
        if len(self._flushers) < 1 or self._lanes.locked() is False:
            task = asyncio.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        async with self._lanes:
            while self._queue:
                taken: list[_Waiting] = []
                size = 0
                while self._queue and size + len(self._queue[0][0]) <= self._max_batch:
                    item = self._queue.pop(0)
                    taken.append(item)
                    size += len(item[0])
                combined = [t for transfers, _ in taken for t in transfers]
                try:
                    results = await create_transfers(self._pool, combined)
                except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                offset = 0
                for transfers, future in taken:
                    if not future.done():
                        future.set_result(results[offset : offset + len(transfers)])
                    offset += len(transfers)

    async def close(self) -> None:
        """Wait for the batches already queued (call on shutdown)."""
        while self._flushers:
            await asyncio.gather(*list(self._flushers), return_exceptions=True)
