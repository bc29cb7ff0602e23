"""The population registry (OAuth 2.0 client credentials) and the enterprise registry (API key).

Population registry, under ``/population``:
- ``POST /oauth/token``: ``grant_type=client_credentials``, client authenticated with HTTP Basic
  (or ``client_id``/``client_secret`` form fields); answers an opaque bearer token.
- ``POST /v1/persons/verify`` ``{"name", "id_number"}`` with the bearer token: ``{"status":
  "match" | "name_mismatch" | "not_found" | "deceased", "person": {...} | null}``. A POST so that
  no ID number ever appears in a URL or an access log; it reads and changes nothing.

Enterprise registry, under ``/enterprise``, with ``X-Api-Key``:
- ``GET /v1/enterprises/{credit_code}``: the registration with its legal representative, or 404.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, JSONBody

from integrations.simulators.auth import api_key, error, oauth
from integrations.simulators.faults import UpstreamState
from integrations.simulators.seed import ENTERPRISES, PEOPLE

__all__ = ["enterprise_router", "population_router"]

_PEOPLE_BY_ID = {person.id_number: person for person in PEOPLE}
_ENTERPRISES = {enterprise.credit_code: enterprise for enterprise in ENTERPRISES}


class VerifyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    id_number: str


def population_router(state: UpstreamState, client_secret: str) -> Router:
    token, authorised = oauth(state, client_secret)

    @post("/v1/persons/verify", operation_id="PopulationVerify", status_code=200)
    async def verify(data: JSONBody[VerifyRequest], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        person = _PEOPLE_BY_ID.get(data.id_number.upper())
        if person is None:
            return Response({"status": "not_found", "person": None})
        if person.name != data.name.strip():
            return Response({"status": "name_mismatch", "person": None})
        if not person.alive:
            return Response({"status": "deceased", "person": None})
        number = person.id_number
        birth = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
        details = {"birth_date": birth, "gender": person.gender, "region_code": number[:6]}
        return Response({"status": "match", "person": details})

    return Router("/population", route_handlers=[token, verify])


def enterprise_router(state: UpstreamState, key: str) -> Router:
    authorised = api_key(key)

    @get("/v1/enterprises/{credit_code:str}", operation_id="EnterpriseLookup")
    async def lookup(credit_code: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_api_key")
        enterprise = _ENTERPRISES.get(credit_code.upper())
        if enterprise is None:
            return error(404, "not_found")
        representative = _PEOPLE_BY_ID[enterprise.legal_representative_id_number]
        return Response(
            {
                "credit_code": enterprise.credit_code,
                "name": enterprise.name,
                "kind": enterprise.kind,
                "status": enterprise.status,
                "registered_on": enterprise.registered_on.isoformat(),
                "legal_representative": {
                    "name": representative.name,
                    "id_number": representative.id_number,
                },
            }
        )

    del state  # faults are applied by the middleware; nothing else is kept per request
    return Router("/enterprise", route_handlers=[lookup])
