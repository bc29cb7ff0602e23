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
import contextlib
import contextvars
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors import metrics
from integrations.connectors.auth import Auth
from integrations.connectors.breaker import CircuitBreaker
from integrations.connectors.cache import CachedEntry, CachePolicy, GetBatcher, ResponseCache
from integrations.errors import CircuitOpen, NotConfigured, ServiceRefusal
from integrations.registries import UpstreamError, UpstreamMalformed, UpstreamRejected, UpstreamUnavailable

__all__ = ["Connector", "ConnectorPolicy", "Fetched", "Operation", "backoff_delay", "call_budget"]

log = logging.getLogger("citizen.integrations")

T = TypeVar("T")

_RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_jitter = random.SystemRandom()
# The caller's deadline (event loop time), if it set one with ``call_budget``.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("connector_deadline", default=None)


@contextlib.contextmanager
def call_budget(seconds: float) -> Iterator[None]:
    """Connector calls made inside (tasks started inside too) end within ``seconds`` from now,
    or sooner if an enclosing budget ends first; a call cut short counts as a failure."""
    deadline = asyncio.get_running_loop().time() + seconds
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


class ConnectorPolicy(msgspec.Struct, frozen=True, kw_only=True):
    budget: float = 1.0  # seconds for the whole call, retries and token included
    attempts: int = 3  # for idempotent operations; others get exactly one
    backoff_base: float = 0.05  # seconds; the n-th retry waits U(0, min(cap, base * 2**n))
    backoff_cap: float = 1.0
    breaker_threshold: int = 5
    breaker_window: float = 30.0
    breaker_cooldown: float = 15.0
    max_connections: int = 20


def backoff_delay(retry: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""
    return (rng or _jitter).uniform(0.0, min(cap, base * (2**retry)))


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    value: T
    source: Literal["upstream", "cache", "stale", "fallback"]
    age: float = 0.0  # seconds since the upstream gave this value
    detail: str = ""  # for ``fallback``: why the upstream could not answer

    @property
    def stale(self) -> bool:
        return self.source == "stale"


@dataclass(frozen=True, slots=True)
class Operation(Generic[T]):
    """One kind of call. ``decode`` maps a non-5xx answer to ``T`` or raises (see ``Connector``)."""

    name: str
    decode: Callable[[httpx.Response], T]
    result_type: Any  # what ``T`` is, for reading it back from the cache
    idempotent: bool = True
    cache: CachePolicy | None = None


@dataclass(frozen=True, slots=True)
class _Outbound:
    method: str
    path: str
    content: bytes | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Refresh(Generic[T]):
    operation: Operation[T]
    outbound: _Outbound
    key: str
    policy: CachePolicy


class _Retryable(Exception):  # an internal signal between an attempt and the retry loop
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


class Connector:
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
        self.cache = ResponseCache(redis, name, cache_secret, batcher)
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

    async def __aenter__(self) -> Connector:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._refreshing:
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)
        await self._client.aclose()

    async def settle(self) -> None:
        """Wait for the background refreshes started so far (tests, orderly shutdown)."""
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    async def fetch(
        self,
        operation: Operation[T],
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        cache_key: str | None = None,
    ) -> Fetched[T]:
        """``headers``: e.g. an ``Idempotency-Key``, which the upstream must honour for
        an operation declared idempotent that changes something."""
        content = None if body is None else msgspec.json.encode(body)
        outbound = _Outbound(method, path, content, dict(headers or {}))
        policy = operation.cache if cache_key is not None else None
        if policy is None or cache_key is None:
            return Fetched(await self._call(operation, outbound), "upstream")
        key = self.cache.key(operation.name, cache_key)
        cached = await self._cached(operation, key)
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
        await self.cache.put(key, msgspec.json.encode(value), policy)
        return Fetched(value, "upstream")

    async def _cached(self, operation: Operation[T], key: str) -> Fetched[T] | None:
        entry = await self.cache.get(key)
        return None if entry is None else self._decoded(operation, entry)

    def _decoded(self, operation: Operation[T], entry: CachedEntry) -> Fetched[T] | None:
        try:
            value: T = msgspec.json.decode(entry.body, type=operation.result_type)
        except msgspec.MsgspecError:
            return None  # written by an older version in another shape: a miss
        return Fetched(value, "cache", max(0.0, time.time() - entry.fetched_at))

    def _refresh_later(self, job: _Refresh[Any]) -> None:
        async def refresh() -> None:
            try:
                value = await self._call(job.operation, job.outbound)
                await self.cache.put(job.key, msgspec.json.encode(value), job.policy)
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

    async def _call(self, operation: Operation[T], outbound: _Outbound) -> T:
        labels = (self.name, operation.name)
        if not self.base_url:
            metrics.CALLS.labels(*labels, "unavailable").inc()
            raise NotConfigured(f"{self.name}: no upstream URL is configured")
        budget = self.policy.budget
        deadline = _deadline.get()
        if deadline is not None:
            budget = min(budget, deadline - asyncio.get_running_loop().time())
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

    async def _with_retries(self, operation: Operation[T], outbound: _Outbound, budget: float) -> T:
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
            except _Retryable as exc:
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

    async def _attempt(self, operation: Operation[T], outbound: _Outbound) -> T:
        started = time.perf_counter()
        try:
            response = await self._send(outbound)
        finally:
            metrics.LATENCY.labels(self.name, operation.name).observe(time.perf_counter() - started)
        status = response.status_code
        if status in _RETRYABLE_STATUS or status >= 500:
            raise _Retryable(f"status_{status // 100}xx", f"answered {status}")
        try:
            return operation.decode(response)
        except msgspec.MsgspecError as exc:
            raise UpstreamMalformed(f"{self.name} {operation.name}: {exc}") from None

    async def _send(self, outbound: _Outbound) -> httpx.Response:
        headers = {"Accept": "application/json", **outbound.headers}
        if outbound.content is not None:
            headers["Content-Type"] = "application/json"
        for first in (True, False):
            request = self._client.build_request(
                outbound.method, outbound.path, content=outbound.content, headers=headers
            )
            try:
                if self.auth is not None:
                    await self.auth.apply(request, self._client)
                response = await self._client.send(request)
            except UpstreamUnavailable as exc:  # the token endpoint
                raise _Retryable("token", str(exc)) from None
            except httpx.TimeoutException as exc:
                raise _Retryable("timeout", f"timed out ({exc.__class__.__name__})") from None
            except httpx.HTTPError as exc:
                raise _Retryable("transport", exc.__class__.__name__) from None
            if response.status_code == 401 and first and self.auth is not None and self.auth.refresh():
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def expect_status(response: httpx.Response, *allowed: int) -> None:
    """For ``decode`` functions: a 4xx that the contract does not allow is our fault."""
    if response.status_code not in allowed:
        raise UpstreamRejected(f"unexpected status {response.status_code} from {response.request.url.path}")
