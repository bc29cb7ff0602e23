"""What each home tile shows, and where it comes from.

A tile is a :class:`TileSpec`: the connector reads it needs (``reads``: plain ``Lookup`` data, so
the home can read every tile's cache entry in one Redis round trip before calling anything), an
optional second stage of reads that depends on the first's answers (``then``: the bills of each
utility account), and ``build``, which maps the answers to a ``Fetched`` of a small summary Struct
(never the upstream's whole record) with the answers' worst ``source`` and largest ``age``:
``integrations.entrance.home`` turns that, or the failure, into the tile's status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from integrations.connectors import city, medical, registries, social_security
from integrations.connectors.base import UNREAD, Connector, Fetched, Lookup
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
    "Read",
    "SocialSecurityTile",
    "TileContext",
    "TileSpec",
    "TileStatus",
    "UtilitiesTile",
    "fetch_tile",
]

_WORST = {"upstream": 0, "cache": 0, "stale": 1, "fallback": 2}

Read = tuple[Connector, Lookup[Any]]
Answers = Sequence[Fetched[Any]]


@dataclass(frozen=True, slots=True)
class TileContext:
    connectors: Connectors
    id_number: str | None  # the person's (None: not verified, or acting for an organisation)
    organisation: OrganisationRef | None
    stop_id: str
    applications_seen: Callable[[tuple[Application, ...]], None] | None = None


@dataclass(frozen=True, slots=True)
class TileSpec:
    reads: Callable[[TileContext], tuple[Read, ...]]
    build: Callable[[TileContext, Answers, Answers], Fetched[Any]]  # (first answers, second answers)
    then: Callable[[TileContext, Answers], tuple[Read, ...]] | None = None
    timeless: bool = True  # False: ``build`` depends on the answers' age too (the bus ETAs)


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


def _worst(parts: Answers, value: Any) -> Fetched[Any]:
    """``value`` as old as its oldest part, with the worst part's source and detail."""
    if len(parts) == 1:
        one = parts[0]
        return Fetched(value, one.source, one.age, one.detail)
    worst = max(parts, key=lambda f: (_WORST[f.source], f.age))
    return Fetched(value, worst.source, max(f.age for f in parts), worst.detail)


async def fetch_tile(spec: TileSpec, ctx: TileContext, entries: Mapping[str, Any]) -> Fetched[Any]:
    """The tile through its connectors (cache, breaker, retries), its reads concurrently.
    ``entries``: cache entries the caller has just read, by key (not read again)."""
    first = await _gather(spec.reads(ctx), entries)
    second = await _gather(spec.then(ctx, first), entries) if spec.then is not None else ()
    return spec.build(ctx, first, second)


async def _gather(reads: tuple[Read, ...], entries: Mapping[str, Any]) -> list[Fetched[Any]]:
    calls = [c.get(lookup, entry=entries.get(c.key_of(lookup) or "", UNREAD)) for c, lookup in reads]
    if len(calls) == 1:
        return [await calls[0]]
    return list(await asyncio.gather(*calls))


# --- person tiles -------------------------------------------------------------------------------


class SocialSecurityTile(msgspec.Struct, frozen=True, kw_only=True):
    insured: bool
    status: str | None = None  # contributing / receiving / suspended
    months_contributed: int | None = None
    last_month: str | None = None
    last_personal: int | None = None  # fen
    pension_monthly: int | None = None  # fen


def _social_security(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    record: social_security.SocialSecurityRecord | None = first[0].value
    if record is None:
        return _worst(first, SocialSecurityTile(insured=False))
    last = record.recent_contributions[0] if record.recent_contributions else None
    return _worst(
        first,
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


def _medical_insurance(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    account: medical.MedicalInsuranceAccount | None = first[0].value
    if account is None:
        return _worst(first, MedicalInsuranceTile(insured=False))
    last = account.recent_settlements[0] if account.recent_settlements else None
    return _worst(
        first,
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


def _health(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    record: medical.HealthRecord | None = first[0].value
    if record is None:
        return _worst(first, HealthTile(has_card=False))
    visit = record.last_visit
    return _worst(
        first,
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


def _bus(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    fetched = first[0]
    stop: city.StopArrivals | None = fetched.value
    if stop is None:
        return _worst(first, BusTile(stop_id=ctx.stop_id, known=False))
    elapsed = int(fetched.age)  # a cached answer's ETAs have been counting down since
    arrivals = tuple(
        BusArrival(line=a.line, destination=a.destination, eta_seconds=a.eta_seconds - elapsed)
        for a in stop.arrivals
        if a.eta_seconds - elapsed >= 0
    )[:4]
    return _worst(first, BusTile(stop_id=stop.stop_id, known=True, name=stop.name, arrivals=arrivals))


class ApplicationItem(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    service: str
    status: str
    submitted_on: dt.date


class ApplicationsTile(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    in_progress: int
    latest: tuple[ApplicationItem, ...]


def _applications(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    fetched = first[0]
    if fetched.source == "upstream" and ctx.applications_seen is not None:
        ctx.applications_seen(fetched.value)
    listed: list[Application] = sorted(fetched.value, key=lambda a: a.submitted_on, reverse=True)
    items = tuple(
        ApplicationItem(
            application_id=a.application_id, service=a.service, status=a.status, submitted_on=a.submitted_on
        )
        for a in listed[:5]
    )
    in_progress = sum(1 for a in listed if a.status in {"submitted", "in_review"})
    return _worst(first, ApplicationsTile(total=len(listed), in_progress=in_progress, latest=items))


class LicenceItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    title: str
    issuer: str
    expires_on: dt.date | None


class LicencesTile(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    licences: tuple[LicenceItem, ...]


def _licences_of(found: tuple[Licence, ...]) -> LicencesTile:
    items = tuple(
        LicenceItem(kind=lic.kind, title=lic.title, issuer=lic.issuer, expires_on=lic.expires_on)
        for lic in found
    )
    return LicencesTile(count=len(items), licences=items)


def _licences(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    own = tuple(lic for lic in first[0].value if lic.credit_code is None)  # not the companies'
    return _worst(first, _licences_of(own))


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


def _bills(ctx: TileContext, first: Answers) -> tuple[Read, ...]:
    """Every account's bills (at once): the second stage of the utilities tile."""
    connector = ctx.connectors.utilities
    return tuple((connector, city.bills_of(a.account_number)) for a in first[0].value)


def _utilities(ctx: TileContext, first: Answers, second: Answers) -> Fetched[Any]:
    accounts: tuple[city.UtilityAccount, ...] = first[0].value
    unpaid = tuple(
        UnpaidBill(
            account_number=account.account_number,
            kind=account.kind,
            provider=account.provider,
            bill_id=bill.bill_id,
            amount=bill.amount,
            due_on=bill.due_on,
        )
        for account, fetched in zip(accounts, second, strict=True)
        for bill in fetched.value or ()
        if bill.status == "unpaid"
    )
    tile = UtilitiesTile(accounts=len(accounts), unpaid_total=sum(b.amount for b in unpaid), unpaid=unpaid)
    return _worst([*first, *second], tile)


# --- organisation tiles -------------------------------------------------------------------------


class EnterpriseTile(msgspec.Struct, frozen=True, kw_only=True):
    credit_code: str
    registered: bool
    name: str | None = None
    kind: str | None = None
    status: str | None = None
    registered_on: dt.date | None = None


def _enterprise(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    found = first[0].value
    if found is None:
        return _worst(first, EnterpriseTile(credit_code=_org(ctx).credit_code, registered=False))
    return _worst(
        first,
        EnterpriseTile(
            credit_code=found.credit_code,
            registered=True,
            name=found.name,
            kind=found.kind,
            status=found.status,
            registered_on=found.registered_on,
        ),
    )


def _organisation_licences(ctx: TileContext, first: Answers, _: Answers) -> Fetched[Any]:
    return _worst(first, _licences_of(first[0].value))


# Tile name (``integrations.services.tile``) -> its spec. ``card`` is built by the home itself.
SOURCES: dict[str, TileSpec] = {
    "social_security": TileSpec(
        lambda c: ((c.connectors.social_security, social_security.record_by_id_number(_id(c))),),
        _social_security,
    ),
    "medical_insurance": TileSpec(
        lambda c: ((c.connectors.medical_insurance, medical.account_by_id_number(_id(c))),),
        _medical_insurance,
    ),
    "health": TileSpec(lambda c: ((c.connectors.health, medical.record_by_id_number(_id(c))),), _health),
    "bus": TileSpec(lambda c: ((c.connectors.bus, city.arrivals_at(c.stop_id)),), _bus, timeless=False),
    "applications": TileSpec(
        lambda c: ((c.connectors.gov_services, city.applications_by_id_number(_id(c))),), _applications
    ),
    "licences": TileSpec(
        lambda c: ((c.connectors.gov_services, city.licences_by_id_number(_id(c))),), _licences
    ),
    "utilities": TileSpec(
        lambda c: ((c.connectors.utilities, city.accounts_by_id_number(_id(c))),), _utilities, _bills
    ),
    "enterprise": TileSpec(
        lambda c: ((c.connectors.enterprise, registries.registration_by_code(_org(c).credit_code)),),
        _enterprise,
    ),
    "organisation_licences": TileSpec(
        lambda c: ((c.connectors.gov_services, city.organisation_licences_by_code(_org(c).credit_code)),),
        _organisation_licences,
    ),
}

TileStatus = Literal["ok", "stale", "degraded", "unavailable"]
