"""What a connector call is made of: its ``Operation`` (how an answer is decoded and cached), the
``Lookup`` (one call of it: path, body, cache key) and what comes back, ``Fetched``.

A ``Lookup`` is plain data, so the home can compute the cache keys of every tile first and read
them all from Redis in one round trip (``Connector.key_of`` / ``Connector.fresh``) before any
call is made; ``Connector.get(lookup)`` is the ordinary way through cache, breaker and retries.
``answer`` builds the usual ``decode``: status check, JSON into a Struct, optional 404.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpx
import msgspec

from integrations.connectors.cache import CachePolicy
from integrations.registries import UpstreamRejected

__all__ = ["Fetched", "Lookup", "Operation", "answer", "answer_or_none", "expect_status", "same"]

T = TypeVar("T")
A = TypeVar("A")


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
class Lookup(Generic[T]):
    """One cacheable read: ``cache_key`` None means "straight from the upstream"."""

    operation: Operation[T]
    path: str
    cache_key: str | None
    method: str = "GET"
    body: Any = None

    @classmethod
    def search(cls, operation: Operation[T], path: str, field: str, value: str) -> Lookup[T]:
        """``POST path`` with ``{field: value}``: how upstreams take an ID number or a credit code
        (never in a URL). The value is normalised (trimmed, upper case) and is the cache key."""
        normal = value.strip().upper()
        return cls(operation, path, normal, "POST", {field: normal})


def expect_status(response: httpx.Response, *allowed: int) -> None:
    """For ``decode`` functions: a 4xx that the contract does not allow is our fault."""
    if response.status_code not in allowed:
        raise UpstreamRejected(f"unexpected status {response.status_code} from {response.request.url.path}")


def answer(
    kind: type[A], pick: Callable[[A], T], *, ok: int = 200, check: Callable[[T], bool] | None = None
) -> Callable[[httpx.Response], T]:
    """A ``decode``: status ``ok`` → the body as ``kind``, then ``pick`` of it (``same``: all of
    it); any other 4xx is a rejection. ``check`` False → malformed (e.g. a negative amount)."""
    decoder = msgspec.json.Decoder(kind)

    def decode(response: httpx.Response) -> T:
        expect_status(response, ok)
        return _checked(response, pick(decoder.decode(response.content)), check)

    return decode


def answer_or_none(
    kind: type[A], pick: Callable[[A], T], *, check: Callable[[T], bool] | None = None
) -> Callable[[httpx.Response], T | None]:
    """``answer`` where 404 means "no such thing": None."""
    decoder = msgspec.json.Decoder(kind)

    def decode(response: httpx.Response) -> T | None:
        expect_status(response, 200, 404)
        if response.status_code == 404:
            return None
        return _checked(response, pick(decoder.decode(response.content)), check)

    return decode


def _checked(response: httpx.Response, value: T, check: Callable[[T], bool] | None) -> T:
    if check is not None and not check(value):
        raise msgspec.ValidationError(f"the answer to {response.request.url.path} fails its checks")
    return value


def same(value: A) -> A:
    """``pick`` for an answer that is the value itself."""
    return value
