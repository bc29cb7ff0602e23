"""The catalogue's rows (``integrations.services``), held in memory and re-read every
``refresh`` seconds, so an operator's edit shows within that time and a request costs no query.

Availability is the circuit breaker of the service's connector, as every worker sees it (Redis):
closed is ``available``, half-open (a probe is testing the upstream) ``degraded``, open
``unavailable``; a service with no connector is ``available``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from integrations._db import Pool
from integrations.connectors.base import Connector
from integrations.connectors.breaker import BreakerState

__all__ = ["Audience", "Availability", "Catalogue", "Service", "ServiceView", "availability_of", "search"]

log = logging.getLogger("citizen.integrations.catalogue")

Audience = Literal["person", "organisation"]
Availability = Literal["available", "degraded", "unavailable"]

_AVAILABILITY: dict[BreakerState, Availability] = {
    BreakerState.CLOSED: "available",
    BreakerState.HALF_OPEN: "degraded",
    BreakerState.OPEN: "unavailable",
}


class Service(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    category: str
    audience: tuple[Audience, ...]
    min_loa: int  # the level of assurance a person needs (1 mobile, 2 real name, 3 with MFA)
    org_role: str | None  # for organisations: the agent role it needs
    connector: str | None  # the upstream it depends on
    tile: str | None  # the home tile it drives
    name_zh: str
    name_en: str
    summary_zh: str
    summary_en: str
    keywords: str
    position: int

    def allows(self, audience: Audience, loa: int, org_roles: Iterable[str] = ()) -> bool:
        """Whether a caller of this audience, level and (organisation) roles may use it."""
        if audience not in self.audience or loa < self.min_loa:
            return False
        return audience == "person" or self.org_role is None or self.org_role in set(org_roles)


class ServiceView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    category: str
    audience: tuple[Audience, ...]
    min_loa: int
    org_role: str | None
    tile: str | None
    name_zh: str
    name_en: str
    summary_zh: str
    summary_en: str
    availability: Availability

    @classmethod
    def of(cls, service: Service, availability: Availability) -> ServiceView:
        return cls(
            id=service.id,
            category=service.category,
            audience=service.audience,
            min_loa=service.min_loa,
            org_role=service.org_role,
            tile=service.tile,
            name_zh=service.name_zh,
            name_en=service.name_en,
            summary_zh=service.summary_zh,
            summary_en=service.summary_en,
            availability=availability,
        )


_SELECT = """
SELECT id, category, audience, min_loa, org_role, connector, tile, name_zh, name_en, summary_zh,
       summary_en, keywords, position
FROM integrations.services WHERE enabled ORDER BY position, id
"""


class Catalogue:
    def __init__(self, pool: Pool, *, refresh: float = 30.0) -> None:
        self._pool = pool
        self._refresh = refresh
        self._services: tuple[Service, ...] = ()
        self._loaded_at = -float("inf")
        self._lock = asyncio.Lock()

    async def services(self) -> tuple[Service, ...]:
        """Every enabled service, in display order (re-read when older than ``refresh``)."""
        if time.monotonic() - self._loaded_at < self._refresh:
            return self._services
        async with self._lock:
            if time.monotonic() - self._loaded_at >= self._refresh:
                await self._load()
        return self._services

    async def _load(self) -> None:
        try:
            rows = await self._pool.fetch(_SELECT)
        except Exception as exc:
            if not self._services:
                raise
            # Keep serving what we have; try again in a few seconds rather than on every request.
            log.warning("catalogue reload failed", extra={"error": exc.__class__.__name__})
            self._loaded_at = time.monotonic() - self._refresh + 5.0
            return
        self._services = tuple(Service(**{**dict(row), "audience": tuple(row["audience"])}) for row in rows)
        self._loaded_at = time.monotonic()

    def invalidate(self) -> None:
        """Re-read on the next request (after an edit made through this process)."""
        self._loaded_at = -float("inf")

    async def by_tile(self) -> dict[str, Service]:
        return {s.tile: s for s in await self.services() if s.tile is not None}


async def availability_of(
    services: Iterable[Service], connectors: Mapping[str, Connector]
) -> dict[str, Availability]:
    """The availability of each connector the services use (one breaker read per connector)."""
    names = sorted({s.connector for s in services if s.connector is not None and s.connector in connectors})
    states = await asyncio.gather(*(connectors[name].breaker.state() for name in names))
    return {name: _AVAILABILITY[state] for name, state in zip(names, states, strict=True)}


def search(
    services: Iterable[Service],
    q: str | None = None,
    *,
    category: str | None = None,
    audience: Audience | None = None,
) -> list[Service]:
    """Services whose names (either language), summary, category or keywords contain every word
    of ``q`` (case-insensitive); names matching first, then display order."""
    words = (q or "").casefold().split()
    found: list[tuple[int, Service]] = []
    for service in services:
        if category is not None and service.category != category:
            continue
        if audience is not None and audience not in service.audience:
            continue
        names = f"{service.name_zh} {service.name_en}".casefold()
        text = f"{names} {service.summary_zh} {service.summary_en} {service.category} {service.keywords}"
        text = text.casefold()
        if all(word in text for word in words):
            in_name = bool(words) and all(word in names for word in words)
            found.append((0 if in_name else 1, service))
    found.sort(key=lambda pair: (pair[0], pair[1].position))
    return [service for _, service in found]
