"""Applications on a card (多卡合一): each type has its own attributes Struct, validated on write.

Adding a type is adding an :class:`ApplicationType` to ``APPLICATION_TYPES``: no schema change, no
change to the other types. The transit e-purse also has columns of its own (``card.epurses``) for
its counters, which the terminal gateway updates on every load.

Social security and health data come from upstreams through an :class:`ApplicationDirectory`
(``card.directory.ConnectorDirectory`` over integrations' connectors, by the holder's resident ID
number). A look-up that fails never fails the card: the application stays ``pending`` with a
``pending_reason`` (:data:`PENDING_REASONS`) and the identifiers it was given, and a later refresh
(``CardService.refresh_applications``) fills it in.

The social security number is the holder's resident ID number. The card keeps it only masked
(``440***********1230``, :func:`identity.checks.mask_resident_id`), which is all it shows the holder
or an operator: the full number stays with identity, encrypted, where the directory reads it for
each look-up. Nothing the card does needs it in full, so it is never written in clear.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import msgspec

from identity.checks import mask_resident_id

__all__ = [
    "APPLICATION_TYPES",
    "PENDING_REASONS",
    "TRANSIENT_REASONS",
    "ApplicationDirectory",
    "ApplicationType",
    "DirectoryUnavailable",
    "EpurseAttributes",
    "HealthAttributes",
    "HealthCardRecord",
    "HolderDetails",
    "InsuranceRecord",
    "SocialSecurityAttributes",
    "validate_attributes",
]

log = logging.getLogger("citizen.card.applications")

AppStatus = Literal["pending", "active", "blocked", "closed"]

# Why an application is pending (``pending_reason`` in its attributes).
PENDING_REASONS: Mapping[str, str] = {
    "no_directory": "no upstream connector is plugged in",
    "no_id_number": "the holder has no verified resident ID number",
    "not_found": "the upstream has no record for the holder",
    "upstream_unavailable": "the upstream did not answer (down, too slow, or its breaker is open)",
    "upstream_not_configured": "no URL is configured for the upstream",
    "upstream_error": "the upstream answered outside its contract",
    "error": "the look-up failed on our side (logged)",
}
# Reasons worth retrying on the next read of the card (the others wait for an explicit refresh).
TRANSIENT_REASONS = frozenset(
    {"no_directory", "upstream_unavailable", "upstream_not_configured", "upstream_error", "error"}
)


class HolderDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What identity knows about the holder that the applications need (no ID number: the directory
    reads it itself). The identifiers are kept on a pending application when no upstream answers."""

    person_id: uuid.UUID
    loa: int
    social_security_number: str | None = None
    health_card_id: str | None = None


class EpurseAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Transit e-purse (JT/T 978 EP, AID A000000632010105); counters live in ``card.epurses``."""

    aid: str = "A000000632010105"


class SocialSecurityAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Third-generation social security card (第三代社保卡)."""

    social_security_number: str | None = None  # masked: 3 leading and 4 trailing characters
    insurance_status: str = "unknown"  # contributing / receiving / suspended, from the connector
    pending_reason: str | None = None  # a key of PENDING_REASONS while the application is pending


class HealthAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Resident health card (居民健康卡)."""

    health_card_id: str | None = None
    health_record_link: str | None = None  # the record at the health authority
    pending_reason: str | None = None


class InsuranceRecord(msgspec.Struct, frozen=True, kw_only=True):
    social_security_number: str
    insurance_status: str


class HealthCardRecord(msgspec.Struct, frozen=True, kw_only=True):
    health_card_id: str
    health_record_link: str


class DirectoryUnavailable(Exception):
    """A look-up could not be answered; ``reason`` (a key of PENDING_REASONS) stays on the application."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or PENDING_REASONS.get(reason, reason))
        self.reason = reason


class ApplicationDirectory(Protocol):
    """Upstream look-ups behind the social security and health applications. ``None``: the upstream
    has no record for the holder; :class:`DirectoryUnavailable`: it could not be asked."""

    async def social_security(self, holder: HolderDetails) -> InsuranceRecord | None: ...

    async def health_card(self, holder: HolderDetails) -> HealthCardRecord | None: ...


Provisioner = Callable[
    [HolderDetails, "ApplicationDirectory | None"], Awaitable[tuple[AppStatus, msgspec.Struct]]
]


@dataclass(frozen=True, slots=True)
class ApplicationType:
    """A kind of application: its name, its attributes Struct and how a card gets one.

    ``upstream``: its data comes from the directory, so a pending one is provisioned again on refresh.
    """

    name: str
    attributes: type[msgspec.Struct]
    provision: Provisioner
    upstream: bool = False


R = TypeVar("R")


async def _look_up(
    kind: str, directory: ApplicationDirectory | None, ask: Callable[[ApplicationDirectory], Awaitable[R]]
) -> tuple[R | None, str | None]:
    """(record, None), or (None, pending reason): never raises."""
    if directory is None:
        return None, "no_directory"
    try:
        found = await ask(directory)
    except DirectoryUnavailable as exc:
        log.info("card %s look-up: %s (%s)", kind, exc.reason, exc)
        return None, exc.reason
    except Exception:
        log.exception("card %s look-up failed", kind)
        return None, "error"
    return (found, None) if found is not None else (None, "not_found")


async def _epurse(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    return "active", EpurseAttributes()


async def _social_security(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    record, reason = await _look_up("social security", directory, lambda d: d.social_security(holder))
    if record is None:
        number = _masked(holder.social_security_number)
        return "pending", SocialSecurityAttributes(social_security_number=number, pending_reason=reason)
    return "active", SocialSecurityAttributes(
        social_security_number=_masked(record.social_security_number),
        insurance_status=record.insurance_status,
    )


def _masked(number: str | None) -> str | None:
    """The resident ID number as the card keeps it (see the module's docstring)."""
    return None if number is None else mask_resident_id(number)


async def _health(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    record, reason = await _look_up("health", directory, lambda d: d.health_card(holder))
    if record is None:
        return "pending", HealthAttributes(health_card_id=holder.health_card_id, pending_reason=reason)
    return "active", HealthAttributes(
        health_card_id=record.health_card_id, health_record_link=record.health_record_link
    )


APPLICATION_TYPES: Mapping[str, ApplicationType] = {
    t.name: t
    for t in (
        ApplicationType("transit_epurse", EpurseAttributes, _epurse),
        ApplicationType("social_security", SocialSecurityAttributes, _social_security, upstream=True),
        ApplicationType("health", HealthAttributes, _health, upstream=True),
    )
}


def validate_attributes(app_type: str, attributes: Mapping[str, Any]) -> msgspec.Struct:
    """Decode stored or submitted attributes with the type's Struct (``msgspec.ValidationError``)."""
    kind = APPLICATION_TYPES.get(app_type)
    if kind is None:
        raise ValueError(f"unknown application type {app_type!r}")
    return msgspec.convert(dict(attributes), type=kind.attributes)
