"""A connector's policy (budget, retries, breaker, bulkhead), the caller's time budget
(``call_budget``), the backoff, and the options every connector's constructor takes."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import Iterator
from typing import Required, TypedDict

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors.cache import GetBatcher

__all__ = ["ConnectorOptions", "ConnectorPolicy", "backoff_delay", "call_budget", "deadline"]

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


def deadline() -> float | None:
    """The current caller's deadline (event loop time), if any."""
    return _deadline.get()


class ConnectorOptions(TypedDict, total=False):
    """What every connector takes besides its credential (``Connector.__init__``)."""

    base_url: Required[str]
    redis: Required[aioredis.Redis]
    policy: ConnectorPolicy | None
    cache_secret: bytes
    transport: httpx.AsyncBaseTransport | None
    batcher: GetBatcher | None
    pii_key: bytes | None  # the keyring's ``pii-encryption``: seals personal data in the cache
