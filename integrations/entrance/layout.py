"""A home page's layout (the tiles of one kind of caller, with their cache keys), planned once
per subject and stop, and a tile built from fresh cache entries alone (``from_cache``).

A plan remembers the bytes it last built its tile from: the same bytes give the same tile, so
while every part is within its time to live the tile is neither decoded nor built again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from integrations.catalogue.store import Service
from integrations.connectors.base import Fetched
from integrations.connectors.metrics import HitTally
from integrations.entrance.tiles import SOURCES, MissingSubject, Read, TileContext, TileSpec, TileStatus

__all__ = ["Layout", "Plan", "Tile", "cached_tile", "from_cache", "plan_tile", "shown", "tile_of"]

_STATUS: dict[str, TileStatus] = {"upstream": "ok", "cache": "ok", "stale": "stale", "fallback": "degraded"}


class Tile(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the tile, e.g. "social_security"
    service_id: str  # its service in the catalogue
    title_zh: str
    title_en: str
    status: TileStatus
    data: Any = None
    age: float | None = None  # seconds since ``data`` was fresh at its source
    detail: str | None = None  # why it is not ``ok``


@dataclass(slots=True, eq=False)
class Plan:
    """One tile of a layout: its spec, its first-stage reads with their cache keys, the keys of
    its second stage seen last time, and the last tile built from cache entries."""

    service: Service
    spec: TileSpec
    reads: tuple[Read, ...]
    keys: tuple[str | None, ...]
    followups: tuple[str | None, ...] = ()
    suspect: bool = False  # it failed last time: read its breakers with the page
    # What the last build from the cache read (as Redis gave it), and gave: the same bytes give
    # the same tile, so it is not decoded nor built again (while every part is within its ttl).
    seen: tuple[Any, ...] | None = None
    oldest: float = 0.0  # when its oldest part was fetched from the upstream (Unix time)
    expires: float = 0.0  # when its first part goes past its time to live (Unix time)
    hits: tuple[Read, ...] = ()
    value: Any = None
    tallies: tuple[tuple[HitTally, str], ...] = ()  # ``hits`` as (the connector's tally, operation)
    every_key: tuple[str, ...] = ()  # ``all_keys`` as of the last build from the cache

    @property
    def all_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (*self.keys, *self.followups) if k is not None)


@dataclass(slots=True, eq=False)
class Layout:
    """The page of one kind of caller (tiles open to them, their subject, the stop): the same
    for all their requests, so it is planned once."""

    services: list[Service]  # the tiles open to the caller, as the catalogue said when planned
    ctx: TileContext
    plans: list[Plan | None]  # None: the tile is in ``ready`` (the card's is made per request)
    ready: list[Tile | None]
    keys: list[str] = field(default_factory=list)  # every cache key of its tiles
    wire: list[bytes] = field(default_factory=list)  # the same, encoded

    def rekey(self) -> None:
        self.keys = [k for p in self.plans if p is not None for k in (*p.keys, *p.followups) if k is not None]
        self.wire = [k.encode() for k in self.keys]  # as Redis takes them: not encoded per request


def tile_of(service: Service, status: TileStatus, **fields: Any) -> Tile:
    assert service.tile is not None
    return Tile(
        id=service.tile,
        service_id=service.id,
        title_zh=service.name_zh,
        title_en=service.name_en,
        status=status,
        **fields,
    )


def shown(service: Service, fetched: Fetched[Any]) -> Tile:
    return tile_of(
        service,
        _STATUS[fetched.source],
        data=fetched.value,
        age=round(fetched.age, 3),
        detail=fetched.detail or None,
    )


def plan_tile(service: Service, ctx: TileContext) -> tuple[Plan | None, Tile | None]:
    """(the tile's reads, or None with the tile it already is: unavailable; None for the card)."""
    name = service.tile
    if name == "card":
        return None, None
    spec = SOURCES.get(name or "")
    if spec is None:
        detail = f"no source for the tile {name!r} in this version"
        return None, tile_of(service, "unavailable", detail=detail)
    try:
        reads = spec.reads(ctx)
    except MissingSubject as exc:
        return None, tile_of(service, "unavailable", detail=str(exc))
    return Plan(service, spec, reads, tuple(c.key_of(lookup) for c, lookup in reads)), None


def cached_tile(plan: Plan, layout: Layout, values: dict[str, Any], now: float) -> Tile | None:
    """``shown(plan.service, from_cache(...))``; the tile last built, when its cache bytes are
    the same, made at once (no ``Fetched`` in between: this is most of a warm home's work)."""
    seen = plan.seen
    if seen is not None and now < plan.expires and tuple(map(values.get, plan.every_key)) == seen:
        for tally, operation in plan.tallies:
            tally.add(operation)
        service = plan.service
        return Tile(
            id=service.tile or "",
            service_id=service.id,
            title_zh=service.name_zh,
            title_en=service.name_en,
            status="ok",  # _STATUS["cache"]
            data=plan.value,
            age=round(now - plan.oldest, 3),
        )
    fetched = from_cache(plan, layout, values, now)
    return None if fetched is None else shown(plan.service, fetched)


def from_cache(plan: Plan, layout: Layout, values: dict[str, Any], now: float) -> Fetched[Any] | None:
    """The tile from fresh cache entries only (None: one of them is not fresh, or not read)."""
    seen = plan.seen
    if seen is not None and now < plan.expires and tuple(map(values.get, plan.every_key)) == seen:
        for tally, operation in plan.tallies:
            tally.add(operation)
        return Fetched(plan.value, "cache", now - plan.oldest)
    first = _fresh(plan.reads, plan.keys, values)
    if first is None:
        return None
    parts = list(first)
    reads = plan.reads
    second: Sequence[Fetched[Any]] = ()
    if plan.spec.then is not None:
        more = plan.spec.then(layout.ctx, first)
        keys = tuple(c.key_of(lookup) for c, lookup in more)
        if plan.followups != keys:
            plan.followups = keys  # read with the first stage from now on
            plan.seen = None  # built from other keys: not the tile last built
            layout.rekey()
        found = _fresh(more, keys, values)
        if found is None:
            return None
        second, reads = found, (*reads, *more)
        parts += found
    fetched = plan.spec.build(layout.ctx, first, second)
    if plan.spec.timeless:
        plan.every_key = plan.all_keys
        plan.seen = tuple(map(values.get, plan.every_key))
        plan.tallies = tuple((connector.hits, lookup.operation.name) for connector, lookup in reads)
        plan.oldest = now - max(part.age for part in parts)
        plan.expires = min(
            now - part.age + (lookup.operation.cache.ttl if lookup.operation.cache else 0.0)
            for part, (_, lookup) in zip(parts, reads, strict=True)
        )
        plan.hits, plan.value = reads, fetched.value
    return fetched


def _fresh(
    reads: tuple[Read, ...], keys: tuple[str | None, ...], values: dict[str, Any]
) -> list[Fetched[Any]] | None:
    found: list[Fetched[Any]] = []
    for (connector, lookup), key in zip(reads, keys, strict=True):
        if key is None or key not in values:
            return None
        fetched = connector.fresh(lookup, values[key])
        if fetched is None:
            return None
        found.append(fetched)
    return found
