"""Wire types of the persons API."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import msgspec

__all__ = [
    "CodeLoginRequest",
    "CodeRequest",
    "CodeSent",
    "ContextRequest",
    "ContextState",
    "MobileChange",
    "MobileChangeCode",
    "PasswordChange",
    "PasswordLoginRequest",
    "Profile",
    "RegistrationRequest",
    "SessionIssued",
    "TotpCode",
    "TotpEnrolment",
    "VerificationRequest",
]


class _Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class CodeRequest(_Request):
    mobile: str
    purpose: Literal["register", "login"]


class CodeSent(msgspec.Struct, frozen=True, kw_only=True):
    mobile: str  # masked
    expires_in: int


class RegistrationRequest(_Request):
    mobile: str
    code: str
    password: str | None = None


class CodeLoginRequest(_Request):
    mobile: str
    code: str


class PasswordLoginRequest(_Request):
    mobile: str
    password: str


class SessionIssued(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 token type
    session_id: uuid.UUID
    account_id: uuid.UUID
    loa: int
    expires_at: dt.datetime


class VerificationRequest(_Request):
    name: str
    id_number: str


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    account_id: uuid.UUID
    status: str
    level: int
    mobile: str  # masked
    name: str | None  # masked
    id_number: str | None  # masked
    verified_at: dt.datetime | None
    has_password: bool
    totp_enabled: bool
    created_at: dt.datetime


class TotpEnrolment(msgspec.Struct, frozen=True, kw_only=True):
    secret: str  # base32, for authenticator apps
    otpauth_uri: str


class TotpCode(_Request):
    code: str


class PasswordChange(_Request):
    password: str
    current_password: str | None = None


class MobileChangeCode(_Request):
    mobile: str


class MobileChange(_Request):
    """The new number and its code, with fresh proof of the account's factors (identity.persons.mobile):
    the code sent to the current number, or the current password; and the TOTP code if it has one."""

    mobile: str
    code: str
    current_mobile_code: str | None = None
    current_password: str | None = None
    totp_code: str | None = None


class ContextRequest(_Request):
    organisation_id: uuid.UUID | None


class ContextState(msgspec.Struct, frozen=True, kw_only=True):
    account_id: uuid.UUID
    acting_for: uuid.UUID | None
    roles: list[str]
    acting_until: dt.datetime | None = None
