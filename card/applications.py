"""Applications on a card (多卡合一): each type has its own attributes Struct, validated on write.

Adding a type is adding an :class:`ApplicationType` to ``APPLICATION_TYPES``: no schema change, no
change to the other types. The transit e-purse also has columns of its own (``card.epurses``) for
its counters, which the terminal gateway updates on every load.

Social security and health data come from upstream connectors (``integrations``); until a
connector is wired, :class:`ApplicationDirectory` answers "unknown" and the application stays
``pending`` with the identifiers it was given at issuance.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

__all__ = [
    "APPLICATION_TYPES",
    "ApplicationDirectory",
    "ApplicationType",
    "EpurseAttributes",
    "HealthAttributes",
    "HolderDetails",
    "SocialSecurityAttributes",
    "validate_attributes",
]

AppStatus = Literal["pending", "active", "blocked", "closed"]


class HolderDetails(msgspec.Struct, frozen=True, kw_only=True):
    """What identity knows about the holder that the applications need (no ID number)."""

    person_id: uuid.UUID
    loa: int
    social_security_number: str | None = None
    health_card_id: str | None = None


class EpurseAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Transit e-purse (JT/T 978 EP, AID A000000632010105); counters live in ``card.epurses``."""

    aid: str = "A000000632010105"


class SocialSecurityAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Third-generation social security card (第三代社保卡)."""

    social_security_number: str | None = None
    insurance_status: str = "unknown"  # contributing / receiving / suspended, from the connector


class HealthAttributes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Resident health card (居民健康卡)."""

    health_card_id: str | None = None
    health_record_link: str | None = None


class ApplicationDirectory(Protocol):
    """Upstream look-ups behind the social security and health applications."""

    async def insurance_status(self, social_security_number: str) -> str | None: ...

    async def health_record_link(self, health_card_id: str) -> str | None: ...


Provisioner = Callable[
    [HolderDetails, "ApplicationDirectory | None"], Awaitable[tuple[AppStatus, msgspec.Struct]]
]


@dataclass(frozen=True, slots=True)
class ApplicationType:
    """A kind of application: its name, its attributes Struct and how a new card gets one."""

    name: str
    attributes: type[msgspec.Struct]
    provision: Provisioner


async def _epurse(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    return "active", EpurseAttributes()


async def _social_security(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    number = holder.social_security_number
    status = await directory.insurance_status(number) if number and directory is not None else None
    attrs = SocialSecurityAttributes(social_security_number=number, insurance_status=status or "unknown")
    return ("active" if status else "pending"), attrs


async def _health(
    holder: HolderDetails, directory: ApplicationDirectory | None
) -> tuple[AppStatus, msgspec.Struct]:
    card_id = holder.health_card_id
    link = await directory.health_record_link(card_id) if card_id and directory is not None else None
    return ("active" if link else "pending"), HealthAttributes(
        health_card_id=card_id, health_record_link=link
    )


APPLICATION_TYPES: Mapping[str, ApplicationType] = {
    t.name: t
    for t in (
        ApplicationType("transit_epurse", EpurseAttributes, _epurse),
        ApplicationType("social_security", SocialSecurityAttributes, _social_security),
        ApplicationType("health", HealthAttributes, _health),
    )
}


def validate_attributes(app_type: str, attributes: Mapping[str, Any]) -> msgspec.Struct:
    """Decode stored or submitted attributes with the type's Struct (``msgspec.ValidationError``)."""
    kind = APPLICATION_TYPES.get(app_type)
    if kind is None:
        raise ValueError(f"unknown application type {app_type!r}")
    return msgspec.convert(dict(attributes), type=kind.attributes)
