"""Connector answers cached in Redis, with a time to live and a stale-while-revalidate window.

An entry is the upstream's answer already mapped to our Struct, JSON-encoded, with the time it
was fetched. Within ``ttl`` it is fresh; for ``stale`` seconds more it is served at once, with
its age, while one process (``SET NX`` refresh lock) fetches a new one in the background (RFC
5861). With ``keep``, the entry stays that much longer as a last-known value, served only when
the upstream fails (stale-if-error). Keys are keyed hashes (the keyring's ``connectors`` key): no
ID number or other look-up value appears in Redis in the clear, nor can one be found by hashing
every candidate. A connector whose answers are personal data (a social security record, a health
record) has its entries' bodies sealed too, with identity's PII cipher (AES-256-GCM) bound to the
entry's key, so Redis holds neither who nor what; without a cipher it caches nothing.
A Redis failure is a cache miss, never an error of the call.

``GetBatcher`` gathers the look-ups made in the same turn of the event loop (every connector's,
for every request being served at that moment) into one ``MGET``. The home reads its tiles' entries
itself, in its own one ``MGET``, then hands them to the connectors (``Connector.fresh``, and
``Connector.get(..., entry=...)`` for the rest).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from identity.crypto import DecryptionError, PiiCipher

__all__ = ["CachePolicy", "CachedEntry", "GetBatcher", "ResponseCache"]

log = logging.getLogger("citizen.integrations.cache")

_KEPT = 50_000  # keys of recent look-ups remembered per connector (~150 bytes each); then all forgotten


class CachePolicy(msgspec.Struct, frozen=True, kw_only=True):
    ttl: float  # seconds fresh
    stale: float = 0.0  # seconds more it may be served while it is refreshed
    keep: float = 0.0  # seconds more it is kept, served only if the upstream fails


class CachedEntry(msgspec.Struct, frozen=True, array_like=True):
    fetched_at: float  # Unix time
    body: bytes  # the mapped value, JSON (sealed, for a connector of personal data)


class GetBatcher:
    """``await batcher.get(key)``: the GETs of one event loop turn go to Redis as one MGET."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._pending: dict[str, list[asyncio.Future[Any]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.setdefault(key, []).append(future)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        task = asyncio.create_task(self._run(pending))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, pending: dict[str, list[asyncio.Future[Any]]]) -> None:
        keys = list(pending)
        try:
            values = await self._redis.mget(keys)
        except BaseException as exc:  # handed to every waiter (a cancellation too)
            for futures in pending.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for key, value in zip(keys, values, strict=True):
            for future in pending[key]:
                if not future.done():
                    future.set_result(value)


class ResponseCache:
    """``personal``: the bodies are personal data, sealed with ``cipher`` (none: not cached)."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str,
        secret: bytes,
        batcher: GetBatcher | None = None,
        *,
        personal: bool = False,
        cipher: PiiCipher | None = None,
    ) -> None:
        self._redis = client
        self._personal = personal
        self._cipher = cipher if personal else None
        self.stores = cipher is not None or not personal
        self._batcher = batcher
        self._namespace = namespace
        self._secret = secret
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(CachedEntry)
        self._keys: dict[tuple[str, str], str] = {}

    def key(self, operation: str, lookup: str) -> str:
        found = self._keys.get((operation, lookup))
        if found is None:  # an HMAC per tile per page adds up: the keys of recent look-ups are kept
            digest = hmac.new(self._secret, f"{operation}\x00{lookup}".encode(), hashlib.sha256).hexdigest()
            found = f"citizen:cache:{self._namespace}:{operation}:{digest[:40]}"
            if len(self._keys) >= _KEPT:
                self._keys.clear()
            self._keys[operation, lookup] = found
        return found

    async def get(self, key: str) -> CachedEntry | None:
        try:
            raw = await (self._batcher.get(key) if self._batcher else self._redis.get(key))
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning(
                "cache read failed", extra={"cache": self._namespace, "error": exc.__class__.__name__}
            )
            return None
        return self.decode(raw, key)

    def decode(self, raw: Any, key: str) -> CachedEntry | None:
        """The entry under ``key`` as Redis gave it (None, not ours, or not sealed for this key: no entry)."""
        if not isinstance(raw, bytes):
            return None
        try:
            entry = self._decoder.decode(raw)
        except msgspec.DecodeError:
            return None
        if not self._personal:
            return entry
        if self._cipher is None:
            return None
        try:  # a plain entry, another key's entry copied here, or another key: a miss
            body = self._cipher.decrypt_bytes(entry.body, _aad(key))
        except DecryptionError:
            return None
        return CachedEntry(entry.fetched_at, body)

    async def put(self, key: str, body: bytes, policy: CachePolicy) -> None:
        if not self.stores:
            return
        if self._cipher is not None:
            body = self._cipher.encrypt(body, _aad(key))
        entry = self._encoder.encode(CachedEntry(time.time(), body))
        try:
            lifetime = policy.ttl + policy.stale + policy.keep
            await self._redis.set(key, entry, px=max(1, int(lifetime * 1000)))
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning(
                "cache write failed", extra={"cache": self._namespace, "error": exc.__class__.__name__}
            )

    async def claim_refresh(self, key: str, hold: float) -> bool:
        """True for exactly one caller per ``hold`` seconds: that one refreshes the entry."""
        try:
            return bool(await self._redis.set(key + ":refresh", b"1", nx=True, px=max(1, int(hold * 1000))))
        except (redis.exceptions.RedisError, OSError):
            return False

    async def release_refresh(self, key: str) -> None:
        try:
            await self._redis.delete(key + ":refresh")
        except (redis.exceptions.RedisError, OSError):
            return


def _aad(key: str) -> str:
    return f"connector_cache:{key}"
