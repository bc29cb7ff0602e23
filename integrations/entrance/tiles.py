"""What each home tile shows, and where it comes from.

A tile source is an ``async`` function of the :class:`TileContext` answering a ``Fetched`` of a
small summary Struct (never the upstream's whole record), with the connector's own ``source``
and ``age``: ``integrations.entrance.home`` turns that, or the failure, into the tile's status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from integrations.connectors.base import Fetched
from integrations.connectors.city import Application, Licence
from integrations.entrance.subjects import OrganisationRef
from integrations.wiring import Connectors

__all__ = [
    "SOURCES",
    "ApplicationsTile",
    "BusTile",
    "EnterpriseTile",
    "HealthTile",
    "LicencesTile",
    "MedicalInsuranceTile",
    "MissingSubject",
    "SocialSecurityTile",
    "TileContext",
    "TileStatus",
    "UtilitiesTile",
]

_WORST = {"upstream": 0, "cache": 0, "stale": 1, "fallback": 2}


@dataclass(frozen=True, slots=True)
class TileContext:
    connectors: Connectors
    id_number: str | None  # the person's (None: not verified, or acting for an organisation)
    organisation: OrganisationRef | None
    stop_id: str
    applications_seen: Callable[[tuple[Application, ...]], None] | None = None


class MissingSubject(Exception):
    """The tile needs an identifier the principal does not have (e.g. no verified ID number)."""


def _id(ctx: TileContext) -> str:
    if ctx.id_number is None:
        raise MissingSubject("a verified resident ID number is needed")
    return ctx.id_number


def _org(ctx: TileContext) -> OrganisationRef:
    if ctx.organisation is None:
        raise MissingSubject("only when acting for an organisation")
    return ctx.organisation


def _with(fetched: Fetched[Any], value: Any) -> Fetched[Any]:
    return Fetched(value, fetched.source, fetched.age, fetched.detail)


# --- person tiles -------------------------------------------------------------------------------


class SocialSecurityTile(msgspec.Struct, frozen=True, kw_only=True):
    insured: bool
    status: str | None = None  # contributing / receiving / suspended
    months_contributed: int | None = None
    last_month: str | None = None
    last_personal: int | None = None  # fen
    pension_monthly: int | None = None  # fen


async def social_security(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.social_security.insured_record_of_person(_id(ctx))
    record = fetched.value
    if record is None:
        return _with(fetched, SocialSecurityTile(insured=False))
    last = record.recent_contributions[0] if record.recent_contributions else None
    return _with(
        fetched,
        SocialSecurityTile(
            insured=True,
            status=record.status,
            months_contributed=record.months_contributed,
            last_month=last.month if last else None,
            last_personal=last.personal if last else None,
            pension_monthly=record.pension.monthly_amount if record.pension else None,
        ),
    )


class MedicalInsuranceTile(msgspec.Struct, frozen=True, kw_only=True):
    insured: bool
    status: str | None = None
    balance: int | None = None  # fen
    last_settled_on: dt.date | None = None
    last_institution: str | None = None
    last_self_paid: int | None = None


async def medical_insurance(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.medical_insurance.account_of_person(_id(ctx))
    account = fetched.value
    if account is None:
        return _with(fetched, MedicalInsuranceTile(insured=False))
    last = account.recent_settlements[0] if account.recent_settlements else None
    return _with(
        fetched,
        MedicalInsuranceTile(
            insured=True,
            status=account.status,
            balance=account.balance,
            last_settled_on=last.settled_on if last else None,
            last_institution=last.institution if last else None,
            last_self_paid=last.self_paid if last else None,
        ),
    )


class HealthTile(msgspec.Struct, frozen=True, kw_only=True):
    has_card: bool
    health_card_id: str | None = None
    last_visit_on: dt.date | None = None
    last_visit_hospital: str | None = None
    last_visit_department: str | None = None


async def health(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.health.record_of_person(_id(ctx))
    record = fetched.value
    if record is None:
        return _with(fetched, HealthTile(has_card=False))
    visit = record.last_visit
    return _with(
        fetched,
        HealthTile(
            has_card=True,
            health_card_id=record.health_card_id,
            last_visit_on=visit.on if visit else None,
            last_visit_hospital=visit.hospital if visit else None,
            last_visit_department=visit.department if visit else None,
        ),
    )


class BusArrival(msgspec.Struct, frozen=True, kw_only=True):
    line: str
    destination: str
    eta_seconds: int


class BusTile(msgspec.Struct, frozen=True, kw_only=True):
    stop_id: str
    known: bool
    name: str | None = None
    arrivals: tuple[BusArrival, ...] = ()


async def bus(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.bus.arrivals(ctx.stop_id)
    stop = fetched.value
    if stop is None:
        return _with(fetched, BusTile(stop_id=ctx.stop_id, known=False))
    elapsed = int(fetched.age)  # a cached answer's ETAs have been counting down since
    arrivals = tuple(
        BusArrival(line=a.line, destination=a.destination, eta_seconds=a.eta_seconds - elapsed)
        for a in stop.arrivals
        if a.eta_seconds - elapsed >= 0
    )[:4]
    return _with(fetched, BusTile(stop_id=stop.stop_id, known=True, name=stop.name, arrivals=arrivals))


class ApplicationItem(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    service: str
    status: str
    submitted_on: dt.date


class ApplicationsTile(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    in_progress: int
    latest: tuple[ApplicationItem, ...]


async def applications(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.gov_services.applications(_id(ctx))
    if fetched.source == "upstream" and ctx.applications_seen is not None:
        ctx.applications_seen(fetched.value)
    listed = sorted(fetched.value, key=lambda a: a.submitted_on, reverse=True)
    items = tuple(
        ApplicationItem(
            application_id=a.application_id, service=a.service, status=a.status, submitted_on=a.submitted_on
        )
        for a in listed[:5]
    )
    in_progress = sum(1 for a in listed if a.status in {"submitted", "in_review"})
    return _with(fetched, ApplicationsTile(total=len(listed), in_progress=in_progress, latest=items))


class LicenceItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    title: str
    issuer: str
    expires_on: dt.date | None


class LicencesTile(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    licences: tuple[LicenceItem, ...]


def _licences(found: tuple[Licence, ...]) -> LicencesTile:
    items = tuple(
        LicenceItem(kind=lic.kind, title=lic.title, issuer=lic.issuer, expires_on=lic.expires_on)
        for lic in found
    )
    return LicencesTile(count=len(items), licences=items)


async def licences(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.gov_services.licences(_id(ctx))
    own = tuple(lic for lic in fetched.value if lic.credit_code is None)  # not the companies'
    return _with(fetched, _licences(own))


class UnpaidBill(msgspec.Struct, frozen=True, kw_only=True):
    account_number: str
    kind: str
    provider: str
    bill_id: str
    amount: int  # fen
    due_on: dt.date


class UtilitiesTile(msgspec.Struct, frozen=True, kw_only=True):
    accounts: int
    unpaid_total: int  # fen
    unpaid: tuple[UnpaidBill, ...]


async def utilities(ctx: TileContext) -> Fetched[Any]:
    """The accounts, then every account's bills at once; the tile is as old as its oldest part."""
    connector = ctx.connectors.utilities
    accounts = await connector.accounts(_id(ctx))
    bills = await asyncio.gather(*(connector.bills(a.account_number) for a in accounts.value))
    unpaid = tuple(
        UnpaidBill(
            account_number=account.account_number,
            kind=account.kind,
            provider=account.provider,
            bill_id=bill.bill_id,
            amount=bill.amount,
            due_on=bill.due_on,
        )
        for account, fetched in zip(accounts.value, bills, strict=True)
        for bill in fetched.value or ()
        if bill.status == "unpaid"
    )
    parts: list[Fetched[Any]] = [accounts, *bills]
    worst = max(parts, key=lambda f: (_WORST[f.source], f.age))
    tile = UtilitiesTile(
        accounts=len(accounts.value), unpaid_total=sum(b.amount for b in unpaid), unpaid=unpaid
    )
    return Fetched(tile, worst.source, max(f.age for f in parts), worst.detail)


# --- organisation tiles -------------------------------------------------------------------------


class EnterpriseTile(msgspec.Struct, frozen=True, kw_only=True):
    credit_code: str
    registered: bool
    name: str | None = None
    kind: str | None = None
    status: str | None = None
    registered_on: dt.date | None = None


async def enterprise(ctx: TileContext) -> Fetched[Any]:
    organisation = _org(ctx)
    fetched = await ctx.connectors.enterprise.registration(organisation.credit_code)
    found = fetched.value
    if found is None:
        return _with(fetched, EnterpriseTile(credit_code=organisation.credit_code, registered=False))
    return _with(
        fetched,
        EnterpriseTile(
            credit_code=found.credit_code,
            registered=True,
            name=found.name,
            kind=found.kind,
            status=found.status,
            registered_on=found.registered_on,
        ),
    )


async def organisation_licences(ctx: TileContext) -> Fetched[Any]:
    fetched = await ctx.connectors.gov_services.organisation_licences(_org(ctx).credit_code)
    return _with(fetched, _licences(fetched.value))


TileSource = Callable[[TileContext], Awaitable[Fetched[Any]]]

# Tile name (``integrations.services.tile``) -> its source. ``card`` is built by the home itself.
SOURCES: dict[str, TileSource] = {
    "social_security": social_security,
    "medical_insurance": medical_insurance,
    "health": health,
    "bus": bus,
    "applications": applications,
    "licences": licences,
    "utilities": utilities,
    "enterprise": enterprise,
    "organisation_licences": organisation_licences,
}

TileStatus = Literal["ok", "stale", "degraded", "unavailable"]
