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
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions

from backend.redis_reads import reads_of
from identity.auth import Principal
from identity.errors import Forbidden
from integrations.catalogue.store import Audience, Catalogue, Service
from integrations.connectors import metrics
from integrations.connectors.base import call_budget
from integrations.connectors.city import Application
from integrations.entrance.glance import CardTile, Glances
from integrations.entrance.layout import Layout, Plan, Tile, cached_tile, plan_tile, shown, tile_of
from integrations.entrance.subjects import OrganisationRef, Subjects
from integrations.entrance.tiles import (
    MissingSubject,
    TileContext,
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
_SKEW_MS = 50  # an open breaker closer than this to its end is left to the breaker itself
# Layouts remembered (one per subject and stop, each holding its tiles' last cache bytes, a few
# kB): the oldest made is forgotten first. Beyond them a page is planned and built again.
_LAYOUTS = 4_096


class Home(msgspec.Struct, frozen=True, kw_only=True):
    audience: Audience
    loa: int
    organisation: OrganisationRef | None
    unread_messages: int | None  # None: could not be counted just now
    tiles: list[Tile]
    generated_at: dt.datetime


ApplicationsSeen = Callable[[Principal, tuple[Application, ...]], Awaitable[None]]


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
        self._layouts: dict[Any, Layout] = {}
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
        # Tiles that failed last time: their breakers' state is read in the same round trip.
        suspects = [p for p in layout.plans if p is not None and p.suspect]
        keys = [glance_key, gen_key, *layout.keys]
        values, breakers = await self._read(keys, [glance_key, gen_key, *layout.wire], suspects)
        glance = self._glances.current(values.get(glance_key), values.get(gen_key))
        tiles = list(layout.ready)
        slow: list[tuple[int, Plan]] = []
        now = time.time()
        if now - self._counted >= 1.0:  # the cache hits counted since, into the metrics
            self._counted = now
            for connector in layout.ctx.connectors.all:
                connector.hits.flush()
        for index, plan in enumerate(layout.plans):
            if plan is None:
                continue
            tile = cached_tile(plan, layout, values, now)
            if tile is not None:
                plan.suspect = False
                tiles[index] = tile
            elif (refused := _refused(plan, values, breakers, now)) is not None:
                tiles[index] = refused
            else:
                slow.append((index, plan))
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
            for (index, plan), (_, task) in zip(slow, slowly, strict=True):
                tiles[index] = done = task.result()
                plan.suspect = done.status in {"degraded", "unavailable"}
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
    ) -> Layout:
        stop = stop_id or self.settings.default_bus_stop
        key = (principal.loa, principal.org_roles, id_number, organisation, stop)
        layout = self._layouts.get(key)
        # ``allowed`` is one list per catalogue version: a catalogue edit plans the page again.
        if layout is not None and layout.services is allowed and layout.ctx.connectors is self._connectors():
            return layout
        ctx = TileContext(
            connectors=self._connectors(), id_number=id_number, organisation=organisation, stop_id=stop
        )
        plans: list[Plan | None] = []
        ready: list[Tile | None] = []
        for service in allowed:
            plan, tile = plan_tile(service, ctx)
            plans.append(plan)
            ready.append(tile)
        layout = Layout(allowed, ctx, plans, ready)
        layout.rekey()
        if len(self._layouts) >= _LAYOUTS:
            del self._layouts[next(iter(self._layouts))]
        self._layouts[key] = layout
        return layout

    async def _read(
        self, keys: list[str], wire: list[str | bytes], suspects: list[Plan]
    ) -> tuple[dict[str, Any], dict[str, tuple[Any, Any]]]:
        """Every key in one ``MGET`` (with the suspects' breakers: one pipeline, one round trip);
        Redis failing is a miss of everything (the long way)."""
        breakers = list({c.breaker.key: None for p in suspects for c, _ in p.reads})
        reads = reads_of(self._redis)  # the lean connection when the app has one
        try:
            if not breakers:
                return dict(zip(keys, await reads.call("MGET", *wire), strict=True)), {}
            found, *states = await reads.pipeline(
                [("MGET", *wire), *(("HMGET", key, "state", "open_until") for key in breakers)]
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("home cache read failed", extra={"error": exc.__class__.__name__})
            return {}, {}
        return dict(zip(keys, found, strict=True)), dict(zip(breakers, map(tuple, states), strict=True))

    async def _fetch(self, plan: Plan, ctx: TileContext, entries: dict[str, Any]) -> Tile:
        """The long way: the connectors (stale entries, refreshes, the breaker), within budget."""
        service = plan.service
        budget = self.settings.budget_of(service.tile or "")
        try:
            async with asyncio.timeout(budget + _GRACE):
                with call_budget(budget):
                    fetched = await fetch_tile(plan.spec, ctx, entries)
        except MissingSubject as exc:
            return tile_of(service, "unavailable", detail=str(exc))
        except (CircuitOpen, NotConfigured) as exc:
            return tile_of(service, "unavailable", detail=str(exc))
        except (UpstreamError, TimeoutError) as exc:
            return tile_of(service, "degraded", detail=str(exc) or f"no answer within {budget:g} s")
        except Exception as exc:  # a bug or our own store failing: this tile only
            log.exception("home tile failed", extra={"tile": service.tile})
            return tile_of(service, "degraded", detail=f"internal error ({exc.__class__.__name__})")
        return shown(service, fetched)

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
            return tile_of(service, "degraded", detail="the card could not be read just now")
        return tile_of(service, "ok", data=card, age=0.0)

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


def _refused(
    plan: Plan, values: dict[str, Any], breakers: dict[str, tuple[Any, Any]], now: float
) -> Tile | None:
    """The tile "unavailable" when its upstream's breaker is open (as Redis says, read with the
    page) and there is nothing cached to show: what the connector would answer, without a call."""
    if not plan.suspect or any(values.get(k or "") is not None for k in plan.keys):
        return None  # a stale or kept entry: the connector serves it (stale, or last known)
    for connector, lookup in plan.reads:
        state, until = breakers.get(connector.breaker.key, (None, None))
        # Open until a time on Redis's clock; with a margin for this clock's skew, else ask.
        if state == b"open" and until is not None and int(until) > now * 1000 + _SKEW_MS:
            metrics.CALLS.labels(connector.name, lookup.operation.name, "breaker_open").inc()
            return tile_of(plan.service, "unavailable", detail=f"{connector.name}: circuit breaker open")
    return None
