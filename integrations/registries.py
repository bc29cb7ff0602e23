"""The connector interfaces of the two registries identity checks against.

The population registry (人口库) answers whether a name and a resident ID number belong to one
living person; the enterprise registry (法人库) returns an organisation's registration by its
unified social credit code, including its legal representative. ``identity`` depends on these
Protocols only; the HTTP connectors in ``integrations.connectors`` implement them against the
real upstreams or the simulators in ``integrations.simulators``.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Protocol

import msgspec

__all__ = [
    "EnterpriseRegistry",
    "PersonVerification",
    "PopulationRegistry",
    "RegistryEnterprise",
    "UpstreamError",
    "UpstreamMalformed",
    "UpstreamRejected",
    "UpstreamUnavailable",
    "VerificationResult",
]


class UpstreamError(Exception):
    """An upstream service failed; never a crash of ours.

    The class attributes are the problem contract read by ``backend/errors.py``: an upstream
    error that a domain does not handle itself reaches the client as a 502/503 problem.
    """

    problem_type = "upstream-error"
    problem_title = "An upstream service failed"
    problem_status = 502


class UpstreamUnavailable(UpstreamError):
    """Timed out, refused, 5xx, or the circuit breaker is open."""

    problem_type = "upstream-unavailable"
    problem_title = "An upstream service is unavailable"
    problem_status = 503
    problem_headers = {"Retry-After": "5"}  # noqa: RUF012 - read only


class UpstreamMalformed(UpstreamError):
    """The upstream answered something that does not match its contract."""

    problem_type = "upstream-malformed"
    problem_title = "An upstream service answered something unexpected"


class UpstreamRejected(UpstreamError):
    """The upstream refused our request (a 4xx it should not give): our bug or our configuration.

    Not retried and not counted by the circuit breaker: the upstream itself is well.
    """

    problem_type = "upstream-rejected"
    problem_title = "An upstream service refused the request"


class VerificationResult(enum.StrEnum):
    MATCH = "match"
    NAME_MISMATCH = "name_mismatch"
    NOT_FOUND = "not_found"
    DECEASED = "deceased"


class PersonVerification(msgspec.Struct, frozen=True, kw_only=True):
    result: VerificationResult
    # Returned on a match only: the registry's own view, for the identity record.
    birth_date: dt.date | None = None
    gender: str | None = None  # "M" / "F"
    region_code: str | None = None


class RegistryEnterprise(msgspec.Struct, frozen=True, kw_only=True):
    credit_code: str
    name: str
    kind: str  # e.g. "limited_company", "public_institution", "social_organisation"
    status: str  # "active", "revoked", "cancelled"
    legal_representative_name: str
    legal_representative_id_number: str
    registered_on: dt.date


class PopulationRegistry(Protocol):
    async def verify_person(self, name: str, id_number: str) -> PersonVerification: ...


class EnterpriseRegistry(Protocol):
    async def find_enterprise(self, credit_code: str) -> RegistryEnterprise | None: ...
