"""The identity domain's exceptions, each carrying its RFC 9457 problem contract (see backend/errors.py).

Messages never contain an ID number, a mobile number, a code or a password.
"""

from __future__ import annotations

from typing import Any, ClassVar

from identity.checks import IdentifierError

__all__ = [
    "AccountUnavailable",
    "CodeRejected",
    "Conflict",
    "DuplicateRegistration",
    "Forbidden",
    "IdentityError",
    "InsufficientAssurance",
    "InvalidCredentials",
    "InvalidField",
    "NotFound",
    "RegistryUnavailable",
    "TooManyAttempts",
    "Unauthenticated",
    "invalid_identifier",
]


class IdentityError(Exception):
    problem_type: ClassVar[str] = "identity-error"
    problem_title: ClassVar[str] = "Identity error"
    problem_status: ClassVar[int] = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.problem_extra: dict[str, Any] = extra or {}
        self.problem_headers: dict[str, str] = {}


class InvalidField(IdentityError):
    """422 naming the field and the rule that failed."""

    problem_type = "validation-error"
    problem_title = "The request is not valid"
    problem_status = 422

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}", extra={"errors": [{"field": field, "rule": rule, "message": message}]}
        )
        self.field = field
        self.rule = rule


def invalid_identifier(field: str, exc: IdentifierError) -> InvalidField:
    """An :class:`IdentifierError` from ``identity.checks`` as a 422 on ``field``."""
    message = str(exc).split(": ", 2)[-1]
    return InvalidField(field, exc.rule, message)


class CodeRejected(InvalidField):
    """A one-time or TOTP code that is wrong, expired, already used or never issued."""


class DuplicateRegistration(IdentityError):
    problem_type = "duplicate-registration"
    problem_title = "Already registered"
    problem_status = 409


class Conflict(IdentityError):
    problem_type = "conflict"
    problem_title = "Conflict with the current state"
    problem_status = 409


class Unauthenticated(IdentityError):
    problem_type = "unauthorized"
    problem_title = "Authentication is required"
    problem_status = 401

    def __init__(self, detail: str = "A valid bearer token is required", *, dpop: bool = False) -> None:
        super().__init__(detail)
        challenge = 'DPoP realm="citizen", error="invalid_token"' if dpop else 'Bearer realm="citizen"'
        self.problem_headers = {"WWW-Authenticate": challenge}


class InvalidCredentials(IdentityError):
    problem_type = "invalid-credentials"
    problem_title = "The credentials are not valid"
    problem_status = 401


class InsufficientAssurance(IdentityError):
    """RFC 9470 step-up: the session's level of assurance is below what the resource needs."""

    problem_type = "insufficient-assurance"
    problem_title = "A higher level of assurance is required"
    problem_status = 401

    def __init__(self, required: int, current: int) -> None:
        super().__init__(
            f"this requires level of assurance {required}; the session has {current}",
            extra={"required_loa": required, "current_loa": current},
        )
        self.problem_headers = {
            "WWW-Authenticate": 'Bearer realm="citizen", error="insufficient_user_authentication", '
            f'acr_values="loa{required}"'
        }


class Forbidden(IdentityError):
    problem_type = "forbidden"
    problem_title = "Not allowed"
    problem_status = 403


class AccountUnavailable(IdentityError):
    problem_type = "account-unavailable"
    problem_title = "The account is frozen or deactivated"
    problem_status = 403


class NotFound(IdentityError):
    problem_type = "not-found"
    problem_title = "No such resource"
    problem_status = 404


class TooManyAttempts(IdentityError):
    problem_type = "too-many-requests"
    problem_title = "Too many requests"
    problem_status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": max(retry_after, 1)})
        self.problem_headers = {"Retry-After": str(max(retry_after, 1))}


class RegistryUnavailable(IdentityError):
    problem_type = "registry-unavailable"
    problem_title = "A registry is unavailable"
    problem_status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_headers = {"Retry-After": "5"}
