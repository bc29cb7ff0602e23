"""Wire types of the organisations API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import msgspec

__all__ = [
    "AgentAppointment",
    "AgentChange",
    "AgentView",
    "Membership",
    "OrganisationRegistration",
    "OrganisationView",
]


class OrganisationRegistration(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    credit_code: str
    name: str
    kind: str


class OrganisationView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    credit_code: str
    name: str
    kind: str
    registry_status: str
    registered_on: dt.date | None
    legal_representative: str  # masked name
    created_at: dt.datetime


class AgentAppointment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The person is named by ID number and name; they must hold a verified (L2) account, and they
    # accept the invitation before the roles are theirs.
    id_number: str
    name: str
    roles: list[str]
    # Last day of the appointment (inclusive, China time). Every agent has one; left out, identity
    # sets its default term (identity.organisations.agents.default_end).
    ends_on: dt.date | None = None


class AgentChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    roles: list[str] | None = None
    ends_on: dt.date | None = None
    status: Literal["active", "suspended"] | None = None


class AgentView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    organisation_id: uuid.UUID
    account_id: uuid.UUID
    name: str  # masked
    id_number: str  # masked
    roles: list[str]
    is_legal_representative: bool
    status: str  # invited, active, suspended, declined, removed
    valid_until: dt.datetime | None
    created_at: dt.datetime


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    organisation_id: uuid.UUID
    credit_code: str
    name: str
    roles: list[str]
    is_legal_representative: bool
    status: str
    valid_until: dt.datetime | None
