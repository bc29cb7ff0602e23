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
    "UpstreamUnavailable",
    "VerificationResult",
]


class UpstreamError(Exception):
    """An upstream service failed; never a crash of ours."""


class UpstreamUnavailable(UpstreamError):
    """Timed out, refused, 5xx, or the circuit breaker is open."""


class UpstreamMalformed(UpstreamError):
    """The upstream answered something that does not match its contract."""


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
