"""What a worker remembers of Redis between requests, kept honest by one pub/sub channel.

Checking an access token (introspection, the API's bearer guard, UserInfo) needs two facts from
Redis: the token was not revoked on its own (``oidc:atrev:<jti>``) and its grant still exists.
A round trip for each check costs more than the rest of an introspection, so a worker remembers
the answers, and every change that could make a remembered answer wrong is published on
``oidc:invalidate`` before the changing call returns:

* ``g:<gid>``  a grant was revoked (``GrantStore.revoke``: logout, consent, reuse, the client)
* ``j:<jti>``  one access token was revoked (RFC 7009)
* ``c:<id>``   a client's registration changed (secret rotated, disabled)

The publishing worker also forgets locally at once, so its own next request already sees the
change; other workers see it when the message arrives (a millisecond or so). Nothing is
remembered while the subscription is down (the cache empties and every check goes to Redis),
and an answer read from Redis is not kept if any message arrived while it was being read, so a
revocation can never be overwritten by an older read. Entries also age out after ``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

__all__ = ["CHANNEL", "RevocationCache"]

CHANNEL = "oidc:invalidate"
_MAX_ENTRIES = 200_000  # a worker's memory bound; past it the cache starts again empty

log = logging.getLogger("citizen.identity.oidc")


class RevocationCache:
    def __init__(self, redis: aioredis.Redis, *, ttl: float) -> None:
        self.redis = redis
        self.ttl = ttl
        self.healthy = False  # subscribed: only then is anything remembered
        self.generation = 0  # bumped by every invalidation (and every reconnection)
        self._grants: dict[str, tuple[float, bytes | None]] = {}  # gid -> (when read, context)
        self._jtis: dict[str, float] = {}  # jti -> when it was read as not revoked
        self.client_listeners: list[Callable[[str], None]] = []

    # -- reading -----------------------------------------------------------------------------------

    def grant(self, gid: str) -> tuple[bool, bytes | None]:
        """(known, context): known False means ask Redis; a None context is a gone grant."""
        hit = self._grants.get(gid)
        if hit is None or not self.healthy or time.monotonic() - hit[0] >= self.ttl:
            return False, None
        return True, hit[1]

    def jti_live(self, jti: str) -> bool:
        at = self._jtis.get(jti)
        return at is not None and self.healthy and time.monotonic() - at < self.ttl

    def remember(self, generation: int, *, jti: str | None, gid: str | None, ctx: bytes | None) -> None:
        """Keep what Redis answered, unless something was invalidated since ``generation``."""
        if generation != self.generation or not self.healthy or self.ttl <= 0:
            return
        if len(self._grants) + len(self._jtis) > _MAX_ENTRIES:
            self._clear()
        now = time.monotonic()
        if jti is not None:
            self._jtis[jti] = now
        if gid is not None:
            self._grants[gid] = (now, ctx)

    # -- invalidating ------------------------------------------------------------------------------

    async def publish(self, *messages: str) -> None:
        """Forget here at once, then tell the other workers."""
        for message in messages:
            self._apply(message)
        if messages:
            async with self.redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    _ = pipe.publish(CHANNEL, message)
                await pipe.execute()

    def _apply(self, message: str) -> None:
        self.generation += 1
        kind, _, name = message.partition(":")
        if kind == "g":
            self._grants.pop(name, None)
        elif kind == "j":
            self._jtis.pop(name, None)
        elif kind == "c":
            for listener in self.client_listeners:
                listener(name)
        else:
            self._clear()

    def _clear(self) -> None:
        self.generation += 1
        self._grants.clear()
        self._jtis.clear()

    def _down(self) -> None:
        self.healthy = False
        self._clear()
        for listener in self.client_listeners:
            listener("*")

    # -- the subscription --------------------------------------------------------------------------

    async def run(self) -> None:
        """Listen until cancelled; on any failure, forget everything and subscribe again."""
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: stop trusting memory
                log.warning("oidc invalidation channel lost (%s); checking Redis every time", exc)
            finally:
                self._down()
            await asyncio.sleep(1.0)

    async def _listen(self) -> None:
        pubsub: Any = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._clear()  # anything read before the subscription may be stale
                    self.healthy = True
                elif message["type"] == "message":
                    data = message["data"]
                    self._apply(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
