"""The social security upstream (社保), with signed requests.

Under ``/social_security``, every request signed as ``integrations.credentials`` describes:
- ``GET /v1/insured/{social_security_number}``: status (contributing, receiving a pension,
  suspended), months contributed, the pension if any, and the last six months' contributions
  (amounts in fen). 404 for a person not insured.
- ``POST /v1/insured/search`` ``{"id_number"}``: the same record, by resident ID number.

The data derives from the seeded people: a pensioner for those born before 1960, contributions
for the others who have a social security number.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, JSONBody

from integrations.simulators.auth import signed
from integrations.simulators.faults import UpstreamState
from integrations.simulators.seed import ENTERPRISES, PEOPLE, SeedPerson

__all__ = ["insured_record", "social_security_router"]

_INSURED = {p.social_security_number: p for p in PEOPLE if p.social_security_number}
_BY_ID = {p.id_number: p for p in _INSURED.values()}


class IdNumberQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id_number: str


def _months_back(today: dt.date, count: int) -> list[str]:
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        months.append(f"{year:04d}-{month:02d}")
    return months


def insured_record(person: SeedPerson, today: dt.date) -> dict[str, Any]:
    """The upstream's answer for one seeded person (also used by tests to know what to expect)."""
    born = int(person.id_number[6:10])
    since = dt.date(born + 22, 7, 1)
    employer = next(
        (e.name for e in ENTERPRISES if e.legal_representative_id_number == person.id_number),
        "深圳市公共交通集团有限公司",
    )
    if born < 1960:
        return {
            "social_security_number": person.social_security_number,
            "name": person.name,
            "status": "receiving",
            "insured_since": since.isoformat(),
            "months_contributed": (born + 60 - since.year) * 12,
            "pension": {"monthly_amount": 386_500, "since": dt.date(born + 60, 1, 1).isoformat()},
            "recent_contributions": [],
        }
    base = 1_200_000 if person.gender == "M" else 980_000
    recent = [
        {
            "month": month,
            "base": base,
            "personal": base * 8 // 100,
            "employer": base * 16 // 100,
            "employer_name": employer,
        }
        for month in _months_back(today, 6)
    ]
    return {
        "social_security_number": person.social_security_number,
        "name": person.name,
        "status": "contributing",
        "insured_since": since.isoformat(),
        "months_contributed": (today.year - since.year) * 12 + today.month - since.month,
        "pension": None,
        "recent_contributions": recent,
    }


def social_security_router(state: UpstreamState, signing_key: str) -> Router:
    authorised = signed(signing_key)

    @get("/v1/insured/{number:str}", operation_id="SocialSecurityInsured")
    async def insured(number: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return Response({"error": "invalid_signature"}, status_code=401)
        person = _INSURED.get(number)
        if person is None:
            return Response({"error": "not_found"}, status_code=404)
        return Response(insured_record(person, dt.datetime.now(dt.UTC).date()))

    @post("/v1/insured/search", operation_id="SocialSecuritySearch", status_code=200)
    async def search(data: JSONBody[IdNumberQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return Response({"error": "invalid_signature"}, status_code=401)
        person = _BY_ID.get(data.id_number.upper())
        if person is None:
            return Response({"error": "not_found"}, status_code=404)
        return Response(insured_record(person, dt.datetime.now(dt.UTC).date()))

    del state
    return Router("/social_security", route_handlers=[insured, search])
