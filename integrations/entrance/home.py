"""The app's single entrance: ``Entrance.home(principal)`` builds the home page.

Every tile the catalogue allows the caller (audience, level of assurance, organisation role) is
fetched at once, each under its own budget (``call_budget``: the connector's retries and token
requests included, and a slow answer counts against the upstream's circuit breaker). A tile
never fails the page; its status says what the caller sees:

- ``ok``: fresh data (from the upstream, or from a cache entry within its time to live);
- ``stale``: cached data past its time to live, being refreshed in the background;
- ``degraded``: the upstream failed or was too slow just now; ``data`` is the last known value
  (with its ``age``) when there is one, else null;
- ``unavailable``: the upstream is known to be down (its breaker is open) or not configured, and
  there is nothing to show; or the tile needs something the caller lacks (``detail`` says what).

The page therefore answers within the largest tile budget plus the app's own work.

The usual page costs one Redis round trip: every tile's cache entries, and the card summary and
unread count (``glance``), come back from one ``MGET``; a tile whose entries are all fresh is
built from them at once, with no task, no timer and no upstream call. Only the rest (a miss, a
stale entry, an open breaker to report) goes the long way, concurrently, each under its budget.
The utilities tile reads its accounts, then each account's bills: the bills' keys seen last time
for the same accounts entry are read in the same ``MGET``, so it too needs one round trip.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from identity.auth import Principal
from identity.errors import Forbidden
from integrations.catalogue.store import Audience, Catalogue, Service
from integrations.connectors.base import Fetched, call_budget
from integrations.connectors.city import Application
from integrations.entrance.glance import CardTile, Glances
from integrations.entrance.subjects import OrganisationRef, Subjects
from integrations.entrance.tiles import (
    SOURCES,
    MissingSubject,
    Read,
    TileContext,
    TileSpec,
    TileStatus,
    fetch_tile,
)
from integrations.errors import CircuitOpen, NotConfigured
from integrations.messages.routes import recipient_of
from integrations.messages.store import Recipient
from integrations.registries import UpstreamError
from integrations.settings import EntranceSettings
from integrations.wiring import Connectors

__all__ = ["CardTile", "Entrance", "Home", "Tile"]

log = logging.getLogger("citizen.integrations.entrance")

_GRACE = 0.02  # beyond a tile's budget, for our own Redis/PostgreSQL reads around the call
_STATUS: dict[str, TileStatus] = {"upstream": "ok", "cache": "ok", "stale": "stale", "fallback": "degraded"}
_LAYOUTS = 50_000  # layouts remembered (one per subject and stop); then forgotten all at once


class Tile(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the tile, e.g. "social_security"
    service_id: str  # its service in the catalogue
    title_zh: str
    title_en: str
    status: TileStatus
    data: Any = None
    age: float | None = None  # seconds since ``data`` was fresh at its source
    detail: str | None = None  # why it is not ``ok``


class Home(msgspec.Struct, frozen=True, kw_only=True):
    audience: Audience
    loa: int
    organisation: OrganisationRef | None
    unread_messages: int | None  # None: could not be counted just now
    tiles: list[Tile]
    generated_at: dt.datetime


ApplicationsSeen = Callable[[Principal, tuple[Application, ...]], Awaitable[None]]


@dataclass(slots=True, eq=False)
class _Plan:
    """One tile of a layout: its spec, its first-stage reads with their cache keys, the keys of
    its second stage seen last time, and the last tile built from cache entries."""

    service: Service
    spec: TileSpec
    reads: tuple[Read, ...]
    keys: tuple[str | None, ...]
    followups: tuple[str | None, ...] = ()
    # What the last build from the cache read (as Redis gave it), and gave: the same bytes give
    # the same tile, so it is not decoded nor built again (while every part is within its ttl).
    seen: tuple[Any, ...] | None = None
    oldest: float = 0.0  # when its oldest part was fetched from the upstream (Unix time)
    expires: float = 0.0  # when its first part goes past its time to live (Unix time)
    hits: tuple[Read, ...] = ()
    value: Any = None

    @property
    def all_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (*self.keys, *self.followups) if k is not None)


@dataclass(slots=True, eq=False)
class _Layout:
    """The page of one kind of caller (tiles open to them, their subject, the stop): the same
    for all their requests, so it is planned once."""

    ctx: TileContext
    plans: list[_Plan | None]  # None: the tile is in ``ready`` (the card's is made per request)
    ready: list[Tile | None]
    keys: list[str] = field(default_factory=list)  # every cache key of its tiles

    def rekey(self) -> None:
        self.keys = [k for p in self.plans if p is not None for k in (*p.keys, *p.followups) if k is not None]


def _tile(service: Service, status: TileStatus, **fields: Any) -> Tile:
    assert service.tile is not None
    return Tile(
        id=service.tile,
        service_id=service.id,
        title_zh=service.name_zh,
        title_en=service.name_en,
        status=status,
        **fields,
    )


def _shown(service: Service, fetched: Fetched[Any]) -> Tile:
    return _tile(
        service,
        _STATUS[fetched.source],
        data=fetched.value,
        age=round(fetched.age, 3),
        detail=fetched.detail or None,
    )


class Entrance:
    def __init__(
        self,
        *,
        catalogue: Catalogue,
        connectors: Callable[[], Connectors],
        subjects: Subjects,
        glances: Glances,
        redis: aioredis.Redis,
        settings: EntranceSettings,
        applications_seen: ApplicationsSeen | None = None,
    ) -> None:
        self.catalogue = catalogue
        self._connectors = connectors
        self._subjects = subjects
        self._glances = glances
        self._redis = redis
        self.settings = settings
        self._applications_seen = applications_seen
        self._background: set[asyncio.Task[None]] = set()
        self._allowed: dict[Any, list[Service]] = {}
        self._allowed_from: tuple[Service, ...] = ()
        self._layouts: dict[Any, _Layout] = {}
        self._counted = 0.0  # when cache hits were last added to the metrics

    async def home(self, principal: Principal, stop_id: str | None = None) -> Home:
        audience: Audience = "organisation" if principal.acting_for is not None else "person"
        organisation = None
        id_number = None
        if audience == "organisation":
            organisation = await self._subjects.organisation(principal)  # 403 unless an agent
        elif principal.loa >= 2:
            id_number = await self._subjects.id_number(principal.account_id)
        allowed = await self._services_for(audience, principal)
        layout = self._layout(
            allowed, principal, id_number=id_number, organisation=organisation, stop_id=stop_id
        )
        recipient = recipient_of(principal)
        glance_key, gen_key = self._glances.keys(recipient)
        values = await self._read([glance_key, gen_key, *layout.keys])
        glance = self._glances.current(values.get(glance_key), values.get(gen_key))
        tiles = list(layout.ready)
        slow: list[tuple[int, _Plan]] = []
        now = time.time()
        if now - self._counted >= 1.0:  # the cache hits counted since, into the metrics
            self._counted = now
            for connector in layout.ctx.connectors.all:
                connector.flush_hits()
        for index, plan in enumerate(layout.plans):
            if plan is None:
                continue
            fetched = self._from_cache(plan, layout, values, now)
            if fetched is None:
                slow.append((index, plan))
            else:
                tiles[index] = _shown(plan.service, fetched)
        unread: int | None = None
        card: CardTile | None = None
        if glance is not None:
            unread, card = glance.unread, glance.card
        if slow or glance is None:
            ctx = replace(layout.ctx, applications_seen=self._seen_by(principal))
            gen = values.get(gen_key)
            async with asyncio.TaskGroup() as group:
                loaded = None if glance is not None else group.create_task(self._load(recipient, gen))
                slowly = [(i, group.create_task(self._fetch(plan, ctx, values))) for i, plan in slow]
            for index, task in slowly:
                tiles[index] = task.result()
            if loaded is not None:
                unread, card = loaded.result()
        return Home(
            audience=audience,
            loa=principal.loa,
            organisation=organisation,
            unread_messages=unread,
            tiles=[self._card_tile(s, card) if t is None else t for s, t in zip(allowed, tiles, strict=True)],
            generated_at=dt.datetime.now(dt.UTC),
        )

    async def _services_for(self, audience: Audience, principal: Principal) -> list[Service]:
        """The tiles open to the caller, in the catalogue's order (remembered per catalogue)."""
        services = await self.catalogue.services()
        if services is not self._allowed_from:
            self._allowed, self._allowed_from = {}, services
        key = (audience, principal.loa, principal.org_roles)
        allowed = self._allowed.get(key)
        if allowed is None:
            allowed = [
                s
                for s in services
                if s.tile is not None and s.allows(audience, principal.loa, principal.org_roles)
            ]
            self._allowed[key] = allowed
        if audience == "organisation" and not any(s.org_role for s in allowed):
            # Acting for it, but none of its own services (those needing a role) is open to them.
            raise Forbidden("your roles in this organisation open none of its services here")
        return allowed

    def _seen_by(self, principal: Principal) -> Callable[[tuple[Application, ...]], None] | None:
        seen = self._applications_seen
        if seen is None:
            return None

        def applications_seen(found: tuple[Application, ...]) -> None:
            self._spawn(seen(principal, found))  # fresh from the upstream: compared with what we saw

        return applications_seen

    def _layout(
        self,
        allowed: list[Service],
        principal: Principal,
        *,
        id_number: str | None,
        organisation: OrganisationRef | None,
        stop_id: str | None,
    ) -> _Layout:
        stop = stop_id or self.settings.default_bus_stop
        key = (principal.loa, principal.org_roles, id_number, organisation, stop)
        layout = self._layouts.get(key)
        if layout is not None and layout.ctx.connectors is self._connectors():
            return layout
        ctx = TileContext(
            connectors=self._connectors(), id_number=id_number, organisation=organisation, stop_id=stop
        )
        plans: list[_Plan | None] = []
        ready: list[Tile | None] = []
        for service in allowed:
            plan, tile = self._plan(service, ctx)
            plans.append(plan)
            ready.append(tile)
        layout = _Layout(ctx, plans, ready)
        layout.rekey()
        if len(self._layouts) >= _LAYOUTS:
            self._layouts.clear()
        self._layouts[key] = layout
        return layout

    def _plan(self, service: Service, ctx: TileContext) -> tuple[_Plan | None, Tile | None]:
        """(the tile's reads, or None with the tile it already is: unavailable; None for the card)."""
        name = service.tile
        if name == "card":
            return None, None
        spec = SOURCES.get(name or "")
        if spec is None:
            detail = f"no source for the tile {name!r} in this version"
            return None, _tile(service, "unavailable", detail=detail)
        try:
            reads = spec.reads(ctx)
        except MissingSubject as exc:
            return None, _tile(service, "unavailable", detail=str(exc))
        return _Plan(service, spec, reads, tuple(c.key_of(lookup) for c, lookup in reads)), None

    async def _read(self, keys: list[str]) -> dict[str, Any]:
        """Every key in one ``MGET``; Redis failing is a miss of everything (the long way)."""
        try:
            found = await self._redis.mget(keys)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("home cache read failed", extra={"error": exc.__class__.__name__})
            return {}
        return dict(zip(keys, found, strict=True))

    def _from_cache(
        self, plan: _Plan, layout: _Layout, values: dict[str, Any], now: float
    ) -> Fetched[Any] | None:
        """The tile from fresh cache entries only (None: one of them is not fresh, or not read)."""
        seen = plan.seen
        if seen is not None and now < plan.expires and tuple(map(values.get, plan.all_keys)) == seen:
            for connector, lookup in plan.hits:
                connector.count_hit(lookup.operation)
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
                layout.rekey()
            found = _fresh(more, keys, values)
            if found is None:
                return None
            second, reads = found, (*reads, *more)
            parts += found
        fetched = plan.spec.build(layout.ctx, first, second)
        if plan.spec.timeless:
            plan.seen = tuple(map(values.get, plan.all_keys))
            plan.oldest = now - max(part.age for part in parts)
            plan.expires = min(
                now - part.age + (lookup.operation.cache.ttl if lookup.operation.cache else 0.0)
                for part, (_, lookup) in zip(parts, reads, strict=True)
            )
            plan.hits, plan.value = reads, fetched.value
        return fetched

    async def _fetch(self, plan: _Plan, ctx: TileContext, entries: dict[str, Any]) -> Tile:
        """The long way: the connectors (stale entries, refreshes, the breaker), within budget."""
        service = plan.service
        budget = self.settings.budget_of(service.tile or "")
        try:
            async with asyncio.timeout(budget + _GRACE):
                with call_budget(budget):
                    fetched = await fetch_tile(plan.spec, ctx, entries)
        except MissingSubject as exc:
            return _tile(service, "unavailable", detail=str(exc))
        except (CircuitOpen, NotConfigured) as exc:
            return _tile(service, "unavailable", detail=str(exc))
        except (UpstreamError, TimeoutError) as exc:
            return _tile(service, "degraded", detail=str(exc) or f"no answer within {budget:g} s")
        except Exception as exc:  # a bug or our own store failing: this tile only
            log.exception("home tile failed", extra={"tile": service.tile})
            return _tile(service, "degraded", detail=f"internal error ({exc.__class__.__name__})")
        return _shown(service, fetched)

    async def _load(self, recipient: Any, raw_gen: Any) -> tuple[int | None, CardTile | None]:
        try:
            async with asyncio.timeout(self.settings.page_budget):
                return await self._glances.load(recipient, raw_gen)
        except TimeoutError:
            log.warning("home summary timed out")
            return None, None

    @staticmethod
    def _card_tile(service: Service, card: CardTile | None) -> Tile:
        if card is None:
            return _tile(service, "degraded", detail="the card could not be read just now")
        return _tile(service, "ok", data=card, age=0.0)

    async def changed(self, recipient: Recipient) -> None:
        """Something of the recipient's home summary changed and is committed: counted again
        on their next page (the NOTIFY trigger says the same a moment later)."""
        await self._glances.invalidate(f"{recipient.kind}:{recipient.id}")

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("background work of the home failed")

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle(self) -> None:
        """Wait for the background work started so far (tests, shutdown)."""
        await asyncio.gather(*self._background, return_exceptions=True)


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
