"""The home's own part of the page (the card summary and the unread count), kept in Redis.

One entry per inbox owner, ``citizen:home:glance:<kind>:<id>``, holding the count, the card tile
and the *generation* it was computed under; ``citizen:home:gen:<kind>:<id>`` is the current
generation. An entry counts only while its generation is the current one, so invalidating is one
``INCR`` and a reader that computed an entry from PostgreSQL just before a change cannot make the
old value current again: it read the generation before its query, and the change bumps it after
its commit (``HomeInvalidations``). PostgreSQL is the truth when there is no current entry.

What bumps the generation: PostgreSQL ``NOTIFY citizen_home`` (migration 0003), sent on commit by
triggers on the inbox (a message, a read mark), the card (issued, status) and its applications.
A top-up credited notifies the inbox, so the balance moves with it; rides debit the e-purse
without a message (and reach the ledger only when the reader uploads them), so the entry also
lives at most ``ttl`` seconds. If the listening connection is lost, the same bound holds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from integrations._db import Connection, Pool
from integrations.messages.store import Recipient, unread_count

__all__ = ["CHANNEL", "CardTile", "Glance", "Glances", "HomeInvalidations"]

log = logging.getLogger("citizen.integrations.entrance")

CHANNEL = "citizen_home"
_GEN_LIFETIME = 86_400  # seconds; longer than any entry, so a lapsed generation finds no entry of its own


class CardTile(msgspec.Struct, frozen=True, kw_only=True):
    has_card: bool
    card_id: str | None = None
    card_number: str | None = None  # masked: the last four digits
    status: str | None = None
    balance: int | None = None  # fen, from the payments ledger


NO_CARD = CardTile(has_card=False)


class Glance(msgspec.Struct, frozen=True, array_like=True):
    gen: int
    unread: int
    card: CardTile


class Glances:
    def __init__(self, pool: Pool, redis: aioredis.Redis, *, ttl: float = 30.0) -> None:
        self._pool = pool
        self._redis = redis
        self._ttl_ms = int(ttl * 1000)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(Glance)

    @staticmethod
    def keys(recipient: Recipient) -> tuple[str, str]:
        """(the entry, its generation)."""
        owner = f"{recipient.kind}:{recipient.id}"
        return f"citizen:home:glance:{owner}", f"citizen:home:gen:{owner}"

    def current(self, raw_entry: Any, raw_gen: Any) -> Glance | None:
        """The entry if it was computed under the current generation."""
        if not isinstance(raw_entry, bytes):
            return None
        try:
            glance = self._decoder.decode(raw_entry)
        except msgspec.DecodeError:
            return None
        return glance if glance.gen == _gen(raw_gen) else None

    async def load(self, recipient: Recipient, raw_gen: Any) -> tuple[int | None, CardTile | None]:
        """From PostgreSQL (the unread count, the card: None where that part failed); stored
        under the generation read before the queries when both parts were read."""
        gen = _gen(raw_gen)
        unread: int | None = None
        card: CardTile | None = None
        try:
            async with self._pool.acquire() as connection:
                unread = await unread_count(connection, recipient)
                card = await _card(connection, recipient)
        except Exception as exc:  # noqa: BLE001 - the page shows what it has, never fails for this
            log.warning("home summary failed", extra={"error": exc.__class__.__name__})
        if unread is not None and card is not None:
            entry = self._encoder.encode(Glance(gen, unread, card))
            keys = self.keys(recipient)
            try:
                await self._redis.set(keys[0], entry, px=self._ttl_ms)
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("home summary not cached", extra={"error": exc.__class__.__name__})
        return unread, card

    async def invalidate(self, owner: str) -> None:
        """``owner``: ``person:<uuid>`` or ``organisation:<uuid>`` (the notification's payload)."""
        gen_key = f"citizen:home:gen:{owner}"
        async with self._redis.pipeline(transaction=False) as pipe:
            _ = pipe.incr(gen_key)  # queued, not awaited
            _ = pipe.expire(gen_key, _GEN_LIFETIME)
            await pipe.execute()


def _gen(raw: Any) -> int:
    return int(raw) if isinstance(raw, bytes | str | int) else 0


async def _card(connection: Connection, recipient: Recipient) -> CardTile:
    """The holder's live card (else the latest) and its e-purse balance: card's one query."""
    if recipient.kind != "person":
        return NO_CARD
    from card.summary import card_summary

    summary = await card_summary(connection, recipient.id)
    if summary is None:
        return NO_CARD
    number = summary.card_number
    return CardTile(
        has_card=True,
        card_id=str(summary.card_id),
        card_number="*" * (len(number) - 4) + number[-4:],
        status=summary.status,
        balance=summary.balance,
    )


class HomeInvalidations:
    """Listens to ``NOTIFY citizen_home`` on one connection of its own and bumps the owner's
    generation; reconnects (after ``retry`` seconds) when the connection is lost."""

    def __init__(self, connect: Callable[[], Any], glances: Glances, *, retry: float = 1.0) -> None:
        self._connect = connect  # () -> awaitable asyncpg connection
        self._glances = glances
        self._retry = retry
        self._connection: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._listen()  # the first connection at start-up: its failure is the app's
        self._runner = asyncio.create_task(self._keep_listening(), name="home invalidations")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await connection.close()

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await self._connect()
        connection.add_termination_listener(lambda _c: self._lost.set())
        await connection.add_listener(CHANNEL, self._notified)
        self._connection = connection

    async def _keep_listening(self) -> None:
        while True:
            await self._lost.wait()
            log.warning("home invalidations: connection lost; entries now age out within their ttl")
            while True:
                await asyncio.sleep(self._retry)
                try:
                    await self._listen()
                    break
                except Exception as exc:  # noqa: BLE001 - try again: PostgreSQL may be restarting
                    log.warning(
                        "home invalidations: reconnect failed", extra={"error": exc.__class__.__name__}
                    )

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        kind, _, ident = payload.partition(":")
        try:
            owner = f"{kind}:{uuid.UUID(ident)}"
        except ValueError:
            return
        task = asyncio.create_task(self._bump(owner))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _bump(self, owner: str) -> None:
        try:
            await self._glances.invalidate(owner)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("home invalidation lost", extra={"error": exc.__class__.__name__})
