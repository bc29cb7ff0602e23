"""Connectors to the population registry and the enterprise registry (``integrations.registries``).

- Population: OAuth 2.0 client credentials; ``POST /v1/persons/verify``. Never cached: the
  answer is personal data, and a verification must see a death registered a minute ago. The
  POST only reads, so it is retried like a GET.
- Enterprise: API key; ``GET /v1/enterprises/{code}``, 404 for an unknown code. Cached (public
  register data) for ``ENTERPRISE_CACHE`` with stale-while-revalidate; unknown codes too. The
  legal representative's ID number is personal data: sealed with identity's PII cipher in Redis.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypeVar, Unpack, cast
from urllib.parse import quote

import httpx
import msgspec

from identity.crypto import DecryptionError
from integrations.connectors.auth import ApiKey, ClientCredentials
from integrations.connectors.base import Connector, ConnectorOptions
from integrations.connectors.cache import CachePolicy
from integrations.connectors.calls import Fetched, Lookup, Operation, answer_or_none, expect_status
from integrations.registries import (
    PersonVerification,
    RegistryEnterprise,
    UpstreamMalformed,
    VerificationResult,
)

__all__ = [
    "ENTERPRISE_CACHE",
    "EnterpriseRegistryConnector",
    "PopulationRegistryConnector",
    "registration_by_code",
]

T = TypeVar("T")

ENTERPRISE_CACHE = CachePolicy(ttl=300.0, stale=3600.0)


# The upstreams' own wire formats: anything else they send is malformed.
class _PersonDetails(msgspec.Struct, frozen=True):
    birth_date: dt.date
    gender: Literal["M", "F"]
    region_code: str


class _VerifyAnswer(msgspec.Struct, frozen=True):
    status: Literal["match", "name_mismatch", "not_found", "deceased"]
    person: _PersonDetails | None = None


class _Representative(msgspec.Struct, frozen=True):
    name: str
    id_number: str


class _EnterpriseAnswer(msgspec.Struct, frozen=True):
    credit_code: str
    name: str
    kind: str
    status: Literal["active", "revoked", "cancelled"]
    registered_on: dt.date
    legal_representative: _Representative


_verify_answer = msgspec.json.Decoder(_VerifyAnswer)
_enterprise_answer = msgspec.json.Decoder(_EnterpriseAnswer)


def _decode_verification(response: httpx.Response) -> PersonVerification:
    expect_status(response, 200)
    answer = _verify_answer.decode(response.content)
    result = VerificationResult(answer.status)
    if result is not VerificationResult.MATCH:
        return PersonVerification(result=result)
    if answer.person is None:
        raise UpstreamMalformed("population: a match without the person's details")
    details = answer.person
    return PersonVerification(
        result=result, birth_date=details.birth_date, gender=details.gender, region_code=details.region_code
    )


def _enterprise(answer: _EnterpriseAnswer) -> RegistryEnterprise:
    return RegistryEnterprise(
        credit_code=answer.credit_code,
        name=answer.name,
        kind=answer.kind,
        status=answer.status,
        legal_representative_name=answer.legal_representative.name,
        legal_representative_id_number=answer.legal_representative.id_number,
        registered_on=answer.registered_on,
    )


_decode_enterprise = answer_or_none(_EnterpriseAnswer, _enterprise)

VERIFY = Operation("verify_person", _decode_verification, PersonVerification)
FIND_ENTERPRISE: Operation[RegistryEnterprise | None] = Operation(
    "find_enterprise", _decode_enterprise, RegistryEnterprise | None, cache=ENTERPRISE_CACHE
)


# The organisation's home tile: the same answer, kept a week as a last-known value (identity's
# registration checks use FIND_ENTERPRISE, which never answers from such an old entry).
REGISTRATION: Operation[RegistryEnterprise | None] = Operation(
    "registration",
    _decode_enterprise,
    RegistryEnterprise | None,
    cache=msgspec.structs.replace(ENTERPRISE_CACHE, keep=7 * 86_400.0),
)


# In Redis the legal representative's ID number is sealed (identity's PII cipher, AES-256-GCM,
# bound to the credit code): a registration there is personal data of that person.
class _Sealed(msgspec.Struct, frozen=True, kw_only=True):
    enterprise: RegistryEnterprise  # with an empty legal_representative_id_number
    id_number_enc: bytes


def registration_by_code(credit_code: str) -> Lookup[RegistryEnterprise | None]:
    code = credit_code.strip().upper()
    return Lookup(REGISTRATION, f"/v1/enterprises/{quote(code, safe='')}", code)


class PopulationRegistryConnector(Connector):
    """``PopulationRegistry`` over HTTP. ``base_url`` like ``http://host/population``."""

    def __init__(self, *, client_secret: str, **options: Unpack[ConnectorOptions]) -> None:
        auth = ClientCredentials(f"{options['base_url']}/oauth/token", client_secret)
        super().__init__(name="population", auth=auth, **options)

    async def verify_person(self, name: str, id_number: str) -> PersonVerification:
        body = {"name": name, "id_number": id_number}
        return (await self.fetch(VERIFY, "/v1/persons/verify", method="POST", body=body)).value


class EnterpriseRegistryConnector(Connector):
    """``EnterpriseRegistry`` over HTTP. ``base_url`` like ``http://host/enterprise``.

    ``pii_key``: the keyring's ``pii-encryption`` key, which seals the legal representative's ID
    number in the cache; without it, registrations are not cached at all."""

    def __init__(self, *, api_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="enterprise", auth=ApiKey(api_key), **options)

    async def find_enterprise(self, credit_code: str) -> RegistryEnterprise | None:
        return (await self.lookup(credit_code)).value

    async def lookup(self, credit_code: str) -> Fetched[RegistryEnterprise | None]:
        """The registration with where it came from (upstream, cache, stale) and its age."""
        code = credit_code.strip().upper()
        return await self.get(Lookup(FIND_ENTERPRISE, f"/v1/enterprises/{quote(code, safe='')}", code))

    async def registration(self, credit_code: str) -> Fetched[RegistryEnterprise | None]:
        """``lookup`` for display: may answer from a last-known entry when the registry is down."""
        return await self.get(registration_by_code(credit_code))

    def to_cache(self, operation: Operation[T], value: T) -> bytes | None:
        if not isinstance(value, RegistryEnterprise):
            return super().to_cache(operation, value)  # "no such enterprise": nothing personal
        if self.cipher is None:
            return None
        sealed = self.cipher.encrypt(value.legal_representative_id_number, _aad(value.credit_code))
        bare = msgspec.structs.replace(value, legal_representative_id_number="")
        return msgspec.json.encode(_Sealed(enterprise=bare, id_number_enc=sealed))

    def from_cache(self, operation: Operation[T], body: bytes) -> T:
        found: _Sealed | None = msgspec.json.decode(body, type=_Sealed | None)
        if found is None:
            return cast(T, None)
        if self.cipher is None:
            raise ValueError("no key to open the cached ID number")
        try:
            id_number = self.cipher.decrypt(found.id_number_enc, _aad(found.enterprise.credit_code))
        except DecryptionError as exc:  # another key, or moved to another code's entry
            raise ValueError(str(exc)) from None
        return cast(T, msgspec.structs.replace(found.enterprise, legal_representative_id_number=id_number))


def _aad(credit_code: str) -> str:
    return f"enterprise_legal_representative:{credit_code}"
