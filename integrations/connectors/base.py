"""The connector framework: one ``Connector`` per upstream, one ``Operation`` per kind of call.

A call (``Connector.fetch``) goes, in order, through:

1. the cache (``CachePolicy`` on the operation): a fresh entry answers without any upstream
   call; a stale one answers at once, with its age, and one process refreshes it in the
   background; an older one (kept ``keep`` seconds more) is only a last-known value, served
   with source ``fallback`` when the upstream fails (RFC 5861 stale-if-error);
2. the time budget: everything below (token requests and retries included) happens within
   ``policy.budget`` seconds, or within what is left of the caller's budget (``call_budget``)
   if that is shorter, or the call fails with ``UpstreamUnavailable``;
3. the circuit breaker (shared through Redis): while it is open, no upstream call is made;
4. the attempt: credentials (``auth``), the request, then the operation's ``decode`` that maps
   the answer into our Structs. Any answer that does not fit is ``UpstreamMalformed``;
5. retries, for idempotent operations only: timeouts, transport errors, 5xx, 408 and 429 are
   tried again after an exponential backoff with full jitter, while the budget allows.

Each connector has its own HTTP connection pool (a bulkhead: ``policy.max_connections``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import httpx
import msgspec
import redis.asyncio as aioredis

from identity.crypto import PiiCipher
from integrations.connectors import metrics
from integrations.connectors._outbound import RETRYABLE_STATUS, Outbound, Retryable, send
from integrations.connectors.auth import Auth
from integrations.connectors.breaker import CircuitBreaker
from integrations.connectors.cache import CachedEntry, CachePolicy, GetBatcher, ResponseCache
from integrations.connectors.calls import Fetched, Lookup, Operation, expect_status
from integrations.connectors.policy import (
    ConnectorOptions,
    ConnectorPolicy,
    backoff_delay,
    call_budget,
)
from integrations.connectors.policy import deadline as caller_deadline
from integrations.errors import CircuitOpen, NotConfigured, ServiceRefusal
from integrations.registries import UpstreamError, UpstreamMalformed, UpstreamRejected, UpstreamUnavailable

__all__ = [
    "Connector",
    "ConnectorOptions",
    "ConnectorPolicy",
    "Fetched",
    "Lookup",
    "Operation",
    "backoff_delay",
    "call_budget",
    "expect_status",
]

log = logging.getLogger("citizen.integrations")

T = TypeVar("T")

_SEEN = 1_024  # decoded cache entries remembered for ``fresh``
UNREAD: Any = object()  # ``entry`` of ``get``/``fetch``: not read by the caller


@dataclass(frozen=True, slots=True)
class _Refresh(Generic[T]):
    operation: Operation[T]
    outbound: Outbound
    key: str
    policy: CachePolicy


class Connector:
    # Its answers are personal data: cache entries sealed with ``pii_key``, or not cached at all.
    personal_data: ClassVar[bool] = False

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        redis: aioredis.Redis,
        auth: Auth | None = None,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        transport: httpx.AsyncBaseTransport | None = None,
        batcher: GetBatcher | None = None,
        pii_key: bytes | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.policy = policy = policy or ConnectorPolicy()
        self.auth = auth
        self.breaker = CircuitBreaker(
            redis,
            name,
            threshold=policy.breaker_threshold,
            window=policy.breaker_window,
            cooldown=policy.breaker_cooldown,
            probe_timeout=max(policy.budget * 2, 1.0),
        )
        self.cipher = PiiCipher(pii_key) if pii_key is not None else None
        self.cache = ResponseCache(
            redis, name, cache_secret, batcher, personal=self.personal_data, cipher=self.cipher
        )
        limits = httpx.Limits(
            max_connections=policy.max_connections, max_keepalive_connections=policy.max_connections
        )
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=policy.budget,
            limits=limits,
            transport=transport,
            follow_redirects=False,
        )
        self._rng = random.SystemRandom()
        self._refreshing: set[asyncio.Task[None]] = set()
        self.hits = metrics.HitTally(name)  # fresh cache entries read by callers (``fresh``)
        # (operation, cache key) -> (the entry as read, it decoded, its value): for ``fresh``.
        self._seen: dict[tuple[str, str | None], tuple[bytes, CachedEntry, Any]] = {}

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self.hits.flush()
        for task in self._refreshing:
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)
        await self._client.aclose()

    async def settle(self) -> None:
        """Wait for the background refreshes started so far (tests, orderly shutdown)."""
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    async def get(self, lookup: Lookup[T], *, entry: Any = UNREAD) -> Fetched[T]:
        """A read: through the cache (if ``lookup.cache_key``), the breaker and the retries.
        ``entry``: what Redis just gave the caller for ``key_of(lookup)``, so it is not read again."""
        return await self.fetch(
            lookup.operation,
            lookup.path,
            method=lookup.method,
            body=lookup.body,
            cache_key=lookup.cache_key,
            entry=entry,
        )

    def key_of(self, lookup: Lookup[Any]) -> str | None:
        """The Redis key of the lookup's cache entry (None: not cached)."""
        if lookup.cache_key is None or lookup.operation.cache is None:
            return None
        return self.cache.key(lookup.operation.name, lookup.cache_key)

    def fresh(self, lookup: Lookup[T], raw: Any) -> Fetched[T] | None:
        """The value of a cache entry read by the caller (``raw``: what Redis gave for
        ``key_of(lookup)``) if it is within its time to live; None sends the caller to ``get``,
        which deals with a stale, old or missing entry. Counted as a hit."""
        policy = lookup.operation.cache
        if policy is None or not isinstance(raw, bytes):
            return None
        key = (lookup.operation.name, lookup.cache_key)
        seen = self._seen.get(key)
        if seen is not None and seen[0] == raw:  # the entry read last time: decoded already
            entry, value = seen[1], seen[2]
        else:
            cache_key = self.key_of(lookup)
            read = None if cache_key is None else self.cache.decode(raw, cache_key)
            decoded = None if read is None else self._decoded(lookup.operation, read)
            if read is None or decoded is None:
                return None
            entry, value = read, decoded.value
            if len(self._seen) >= _SEEN:  # the oldest read first out: bounded memory
                del self._seen[next(iter(self._seen))]
            self._seen[key] = (raw, entry, value)
        age = max(0.0, time.time() - entry.fetched_at)
        if age >= policy.ttl:
            return None
        self.hits.add(lookup.operation.name)
        return Fetched(value, "cache", age)

    async def fetch(
        self,
        operation: Operation[T],
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        cache_key: str | None = None,
        entry: Any = UNREAD,
    ) -> Fetched[T]:
        """``headers``: e.g. an ``Idempotency-Key``, which the upstream must honour for
        an operation declared idempotent that changes something."""
        content = None if body is None else msgspec.json.encode(body)
        outbound = Outbound(method, path, content, dict(headers or {}))
        policy = operation.cache if cache_key is not None else None
        if policy is None or cache_key is None:
            return Fetched(await self._call(operation, outbound), "upstream")
        key = self.cache.key(operation.name, cache_key)
        if entry is UNREAD:
            cached = await self._cached(operation, key)
        else:
            read = self.cache.decode(entry, key)
            cached = None if read is None else self._decoded(operation, read)
        labels = (self.name, operation.name)
        if cached is not None and cached.age < policy.ttl + policy.stale:
            if cached.age < policy.ttl:
                metrics.CACHE.labels(*labels, "hit").inc()
                metrics.CALLS.labels(*labels, "cached").inc()
                return cached
            metrics.CACHE.labels(*labels, "stale").inc()
            metrics.CALLS.labels(*labels, "stale").inc()
            if await self.cache.claim_refresh(key, self.policy.budget * 2):
                self._refresh_later(_Refresh(operation, outbound, key, policy))
            return Fetched(cached.value, "stale", cached.age)
        metrics.CACHE.labels(*labels, "miss").inc()
        try:
            value = await self._call(operation, outbound)
        except (UpstreamUnavailable, UpstreamMalformed) as exc:
            if cached is None:  # older entries are kept (``keep``) only to be served now
                raise
            metrics.CACHE.labels(*labels, "fallback").inc()
            return Fetched(cached.value, "fallback", cached.age, str(exc))
        await self._store(key, operation, value, policy)
        return Fetched(value, "upstream")

    async def _cached(self, operation: Operation[T], key: str) -> Fetched[T] | None:
        entry = await self.cache.get(key)
        return None if entry is None else self._decoded(operation, entry)

    def _decoded(self, operation: Operation[T], entry: CachedEntry) -> Fetched[T] | None:
        try:
            value: T = self.from_cache(operation, entry.body)
        except (msgspec.MsgspecError, ValueError):
            return None  # written by an older version in another shape, or under another key: a miss
        return Fetched(value, "cache", max(0.0, time.time() - entry.fetched_at))

    async def _store(self, key: str, operation: Operation[T], value: T, policy: CachePolicy) -> None:
        body = self.to_cache(operation, value)
        if body is not None:
            await self.cache.put(key, body, policy)

    def to_cache(self, operation: Operation[T], value: T) -> bytes | None:
        """The cache entry's body for ``value`` (None: not cached). A connector whose answers are
        personal data says so (``personal_data``): the cache seals the whole body; one with a
        personal field among public ones may override this and ``from_cache`` to seal that field."""
        return msgspec.json.encode(value)

    def from_cache(self, operation: Operation[T], body: bytes) -> T:
        """``to_cache`` undone; ``ValueError`` (or msgspec's) makes the entry a miss."""
        result: T = msgspec.json.decode(body, type=operation.result_type)
        return result

    def _refresh_later(self, job: _Refresh[Any]) -> None:
        async def refresh() -> None:
            try:
                value = await self._call(job.operation, job.outbound)
                await self._store(job.key, job.operation, value, job.policy)
            except UpstreamError as exc:  # the stale entry stays; the next caller tries again
                log.info("background refresh failed", extra={"connector": self.name, "error": str(exc)})
            finally:
                await self.cache.release_refresh(job.key)

        # In a context of its own: the refresh has the connector's whole budget, not the caller's.
        task = asyncio.create_task(
            refresh(), name=f"refresh {self.name} {job.operation.name}", context=contextvars.Context()
        )
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _call(self, operation: Operation[T], outbound: Outbound) -> T:
        labels = (self.name, operation.name)
        if not self.base_url:
            metrics.CALLS.labels(*labels, "unavailable").inc()
            raise NotConfigured(f"{self.name}: no upstream URL is configured")
        budget = self.policy.budget
        ends = caller_deadline()
        if ends is not None:
            budget = min(budget, ends - asyncio.get_running_loop().time())
        if budget <= 0:  # nothing left of the caller's budget: no call, and not the upstream's fault
            metrics.CALLS.labels(*labels, "unavailable").inc()
            raise UpstreamUnavailable(f"{self.name}: the caller's time budget is spent")
        try:
            async with asyncio.timeout(budget):
                value = await self._with_retries(operation, outbound, budget)
        except TimeoutError:
            await self.breaker.record_failure()
            metrics.ERRORS.labels(self.name, "timeout").inc()
            metrics.CALLS.labels(*labels, "unavailable").inc()
            raise UpstreamUnavailable(f"{self.name} did not answer within {round(budget, 2):g} s") from None
        except UpstreamUnavailable as exc:
            outcome = "breaker_open" if isinstance(exc, CircuitOpen) else "unavailable"
            metrics.CALLS.labels(*labels, outcome).inc()
            raise
        except UpstreamMalformed:
            metrics.CALLS.labels(*labels, "malformed").inc()
            raise
        except UpstreamRejected:
            metrics.CALLS.labels(*labels, "rejected").inc()
            raise
        except ServiceRefusal:
            metrics.CALLS.labels(*labels, "refused").inc()
            raise
        metrics.CALLS.labels(*labels, "ok").inc()
        return value

    async def _with_retries(self, operation: Operation[T], outbound: Outbound, budget: float) -> T:
        attempts = self.policy.attempts if operation.idempotent else 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        last = "no attempt made"
        for attempt in range(max(1, attempts)):
            refusal = await self.breaker.acquire()
            if refusal is not None:
                raise CircuitOpen(f"{self.name}: {refusal}; last failure: {last}")
            try:
                value = await self._attempt(operation, outbound)
            except Retryable as exc:
                metrics.ERRORS.labels(self.name, exc.kind).inc()
                await self.breaker.record_failure()
                last = str(exc)
            except UpstreamMalformed:
                metrics.ERRORS.labels(self.name, "malformed").inc()
                await self.breaker.record_failure()
                raise
            except UpstreamRejected:
                metrics.ERRORS.labels(self.name, "status_4xx").inc()
                raise
            except ServiceRefusal:  # a business answer: the upstream is well
                await self.breaker.record_success()
                raise
            else:
                await self.breaker.record_success()
                return value
            if attempt + 1 >= attempts:
                break
            delay = backoff_delay(attempt, self.policy.backoff_base, self.policy.backoff_cap, self._rng)
            if loop.time() + delay >= deadline:
                break  # no time left for another try: fail now rather than at the deadline
            metrics.RETRIES.labels(self.name, operation.name).inc()
            await asyncio.sleep(delay)
        raise UpstreamUnavailable(f"{self.name}: {last}")

    async def _attempt(self, operation: Operation[T], outbound: Outbound) -> T:
        started = time.perf_counter()
        try:
            response = await send(self._client, self.auth, outbound)
        finally:
            metrics.LATENCY.labels(self.name, operation.name).observe(time.perf_counter() - started)
        status = response.status_code
        if status in RETRYABLE_STATUS or status >= 500:
            raise Retryable(f"status_{status // 100}xx", f"answered {status}")
        try:
            return operation.decode(response)
        except msgspec.MsgspecError as exc:
            raise UpstreamMalformed(f"{self.name} {operation.name}: {exc}") from None
