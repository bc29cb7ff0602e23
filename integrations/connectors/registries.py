"""Connectors to the population registry and the enterprise registry (``integrations.registries``).

- Population: OAuth 2.0 client credentials; ``POST /v1/persons/verify``. Never cached: the
  answer is personal data, and a verification must see a death registered a minute ago. The
  POST only reads, so it is retried like a GET.
- Enterprise: API key; ``GET /v1/enterprises/{code}``, 404 for an unknown code. Cached (public
  register data) for ``ENTERPRISE_CACHE`` with stale-while-revalidate; unknown codes too.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from urllib.parse import quote

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors.auth import ApiKey, ClientCredentials
from integrations.connectors.base import Connector, ConnectorPolicy, Fetched, Operation, expect_status
from integrations.connectors.cache import CachePolicy, GetBatcher
from integrations.registries import (
    PersonVerification,
    RegistryEnterprise,
    UpstreamMalformed,
    VerificationResult,
)

__all__ = ["ENTERPRISE_CACHE", "EnterpriseRegistryConnector", "PopulationRegistryConnector"]

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


def _decode_enterprise(response: httpx.Response) -> RegistryEnterprise | None:
    expect_status(response, 200, 404)
    if response.status_code == 404:
        return None
    answer = _enterprise_answer.decode(response.content)
    return RegistryEnterprise(
        credit_code=answer.credit_code,
        name=answer.name,
        kind=answer.kind,
        status=answer.status,
        legal_representative_name=answer.legal_representative.name,
        legal_representative_id_number=answer.legal_representative.id_number,
        registered_on=answer.registered_on,
    )


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


class PopulationRegistryConnector(Connector):
    """``PopulationRegistry`` over HTTP. ``base_url`` like ``http://host/population``."""

    def __init__(
        self,
        *,
        base_url: str,
        client_secret: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        auth = ClientCredentials(f"{base_url}/oauth/token", client_secret)
        super().__init__(
            name="population", base_url=base_url, redis=redis, auth=auth, policy=policy, transport=transport
        )

    async def verify_person(self, name: str, id_number: str) -> PersonVerification:
        body = {"name": name, "id_number": id_number}
        return (await self.fetch(VERIFY, "/v1/persons/verify", method="POST", body=body)).value


class EnterpriseRegistryConnector(Connector):
    """``EnterpriseRegistry`` over HTTP. ``base_url`` like ``http://host/enterprise``."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            name="enterprise",
            base_url=base_url,
            redis=redis,
            auth=ApiKey(api_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
            transport=transport,
        )

    async def find_enterprise(self, credit_code: str) -> RegistryEnterprise | None:
        return (await self.lookup(credit_code)).value

    async def lookup(self, credit_code: str) -> Fetched[RegistryEnterprise | None]:
        """The registration with where it came from (upstream, cache, stale) and its age."""
        code = credit_code.strip().upper()
        return await self.fetch(FIND_ENTERPRISE, f"/v1/enterprises/{quote(code, safe='')}", cache_key=code)

    async def registration(self, credit_code: str) -> Fetched[RegistryEnterprise | None]:
        """``lookup`` for display: may answer from a last-known entry when the registry is down."""
        code = credit_code.strip().upper()
        return await self.fetch(REGISTRATION, f"/v1/enterprises/{quote(code, safe='')}", cache_key=code)
