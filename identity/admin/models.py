"""Wire types of the administration API."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

__all__ = ["AccountSummary", "FreezeRequest", "OperatorLogin", "OrganisationSummary", "SessionView"]


class OperatorLogin(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    username: str
    password: str


class FreezeRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: str


class AccountSummary(msgspec.Struct, frozen=True, kw_only=True):
    account_id: uuid.UUID
    status: str
    level: int
    mobile: str  # masked
    name: str | None  # masked
    id_number: str | None  # masked
    created_at: dt.datetime
    frozen_reason: str | None = None


class OrganisationSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    credit_code: str
    name: str
    kind: str
    legal_representative_id: uuid.UUID
    agents: int


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    loa: int
    amr: list[str]
    client_address: str | None
    client_id: str | None
    user_agent: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_reason: str | None
    live: bool
