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
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from identity.auth import Principal
from identity.errors import Forbidden
from integrations._db import Pool
from integrations.catalogue.store import Audience, Catalogue, Service
from integrations.connectors.base import Fetched, call_budget
from integrations.connectors.city import Application
from integrations.entrance.subjects import OrganisationRef, Subjects
from integrations.entrance.tiles import SOURCES, MissingSubject, TileContext, TileStatus
from integrations.errors import CircuitOpen, NotConfigured
from integrations.messages.routes import recipient_of
from integrations.messages.store import unread_count
from integrations.registries import UpstreamError
from integrations.settings import EntranceSettings
from integrations.wiring import Connectors

__all__ = ["CardTile", "Entrance", "Home", "Tile"]

log = logging.getLogger("citizen.integrations.entrance")

_GRACE = 0.02  # beyond a tile's budget, for our own Redis/PostgreSQL reads around the call
_LIVE = ("active", "frozen", "lost")
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


class CardTile(msgspec.Struct, frozen=True, kw_only=True):
    has_card: bool
    card_id: str | None = None
    card_number: str | None = None  # masked: the last four digits
    status: str | None = None
    balance: int | None = None  # fen, from the payments ledger


class Home(msgspec.Struct, frozen=True, kw_only=True):
    audience: Audience
    loa: int
    organisation: OrganisationRef | None
    unread_messages: int | None  # None: could not be counted just now
    tiles: list[Tile]
    generated_at: dt.datetime


CardSource = Callable[[Principal], Awaitable[CardTile]]
ApplicationsSeen = Callable[[Principal, tuple[Application, ...]], Awaitable[None]]


class Entrance:
    def __init__(
        self,
        *,
        pool: Pool,
        catalogue: Catalogue,
        connectors: Callable[[], Connectors],
        subjects: Subjects,
        card: CardSource,
        settings: EntranceSettings,
        applications_seen: ApplicationsSeen | None = None,
    ) -> None:
        self._pool = pool
        self.catalogue = catalogue
        self._connectors = connectors
        self._subjects = subjects
        self._card = card
        self.settings = settings
        self._applications_seen = applications_seen
        self._background: set[asyncio.Task[None]] = set()

    async def home(self, principal: Principal, stop_id: str | None = None) -> Home:
        audience: Audience = "organisation" if principal.acting_for is not None else "person"
        organisation = None
        id_number = None
        if audience == "organisation":
            organisation = await self._subjects.organisation(principal)  # 403 unless an agent
        elif principal.loa >= 2:
            id_number = await self._subjects.id_number(principal.account_id)
        services = [s for s in await self.catalogue.services() if s.tile is not None]
        allowed = [s for s in services if s.allows(audience, principal.loa, principal.org_roles)]
        if audience == "organisation" and not any(s.org_role for s in allowed):
            # Acting for it, but none of its own services (those needing a role) is open to them.
            raise Forbidden("your roles in this organisation open none of its services here")
        seen = self._applications_seen

        def applications_seen(found: tuple[Application, ...]) -> None:
            if seen is not None:  # fresh from the upstream: compared with what we saw before
                self._spawn(seen(principal, found))

        ctx = TileContext(
            connectors=self._connectors(),
            id_number=id_number,
            organisation=organisation,
            stop_id=stop_id or self.settings.default_bus_stop,
            applications_seen=applications_seen,
        )
        async with asyncio.TaskGroup() as group:
            unread = group.create_task(self._unread(principal))
            tiles = [group.create_task(self._tile(service, principal, ctx)) for service in allowed]
        return Home(
            audience=audience,
            loa=principal.loa,
            organisation=organisation,
            unread_messages=unread.result(),
            tiles=[task.result() for task in tiles],
            generated_at=dt.datetime.now(dt.UTC),
        )

    async def _unread(self, principal: Principal) -> int | None:
        try:
            async with asyncio.timeout(self.settings.page_budget):
                return await unread_count(self._pool, recipient_of(principal))
        except Exception as exc:  # noqa: BLE001 - a count is not worth a failed page
            log.warning("unread count failed", extra={"error": exc.__class__.__name__})
            return None

    async def _tile(self, service: Service, principal: Principal, ctx: TileContext) -> Tile:
        assert service.tile is not None
        name = service.tile
        budget = self.settings.budget_of(name)

        def tile(status: TileStatus, **fields: Any) -> Tile:
            return Tile(
                id=name,
                service_id=service.id,
                title_zh=service.name_zh,
                title_en=service.name_en,
                status=status,
                **fields,
            )

        try:
            async with asyncio.timeout(budget + _GRACE):
                with call_budget(budget):
                    fetched = await self._fetch(name, principal, ctx)
        except MissingSubject as exc:
            return tile("unavailable", detail=str(exc))
        except (CircuitOpen, NotConfigured) as exc:
            return tile("unavailable", detail=str(exc))
        except (UpstreamError, TimeoutError) as exc:
            return tile("degraded", detail=str(exc) or f"no answer within {budget:g} s")
        except Exception as exc:  # a bug or our own store failing: this tile only
            log.exception("home tile failed", extra={"tile": name})
            return tile("degraded", detail=f"internal error ({exc.__class__.__name__})")
        return tile(
            _STATUS[fetched.source],
            data=fetched.value,
            age=round(fetched.age, 3),
            detail=fetched.detail or None,
        )

    async def _fetch(self, name: str, principal: Principal, ctx: TileContext) -> Fetched[Any]:
        if name == "card":
            return Fetched(await self._card(principal), "upstream")
        source = SOURCES.get(name)
        if source is None:
            raise MissingSubject(f"no source for the tile {name!r} in this version")
        return await source(ctx)

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


def card_source(pool: Pool, cards: Callable[[], Any]) -> CardSource:
    """The card tile from card's and payments' public functions: the holder's live card (else
    the latest), and its e-purse balance from the ledger. No card is a state, not an error."""
    from payments.ledger import lookup_balances
    from payments.posting import epurse_account_id

    async def source(principal: Principal) -> CardTile:
        if principal.acting_for is not None:
            return CardTile(has_card=False)
        found = await cards().search(holder_id=principal.account_id, limit=5)
        if not found:
            return CardTile(has_card=False)
        card = next((c for c in found if c.status in _LIVE), found[0])
        account = epurse_account_id(str(card.id))
        balance = (await lookup_balances(pool, [account])).get(account)
        return CardTile(
            has_card=True,
            card_id=str(card.id),
            card_number="*" * (len(card.card_number) - 4) + card.card_number[-4:],
            status=card.status,
            balance=None if balance is None else balance.credit_balance,
        )

    return source
