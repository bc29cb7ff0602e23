"""Medical insurance (医保, signed requests) and health (OAuth 2.0 client credentials).

Medical insurance, under ``/medical_insurance``:
- ``GET /v1/accounts/{social_security_number}``: personal account balance and recent settlements;
- ``POST /v1/accounts/search`` ``{"id_number"}``: the same, by resident ID number.

Health, under ``/health`` (the card's health application):
- ``GET /v1/records/{health_card_id}``: the health record summary;
- ``POST /v1/records/search`` ``{"id_number"}``: the record of that person's health card;
- ``GET /v1/departments/{department_id}/slots``: the next three days' slots and whether free;
- ``POST /v1/appointments`` ``{"health_card_id", "slot_id"}`` with an ``Idempotency-Key``: 201 and
  the appointment; the same key again gives the same appointment; a taken slot 409;
- ``GET /v1/appointments?health_card_id=``: that card's appointments.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from integrations.simulators.auth import error, oauth, signed
from integrations.simulators.faults import UpstreamState
from integrations.simulators.seed import DEPARTMENTS, PEOPLE, SeedPerson

__all__ = ["health_router", "medical_insurance_router", "slot_times"]

_INSURED = {p.social_security_number: p for p in PEOPLE if p.social_security_number}
_CARDS = {p.health_card_id: p for p in PEOPLE if p.health_card_id}
_DEPARTMENTS = {d.department_id: d for d in DEPARTMENTS}
_BY_ID = {p.id_number: p for p in PEOPLE}

_CHINA = dt.timezone(dt.timedelta(hours=8))


class IdNumberQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id_number: str


def medical_insurance_router(state: UpstreamState, signing_key: str) -> Router:
    authorised = signed(signing_key)

    @get("/v1/accounts/{number:str}", operation_id="MedicalInsuranceAccount")
    async def account(number: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_signature")
        return _account(_INSURED.get(number))

    @post("/v1/accounts/search", operation_id="MedicalInsuranceSearch", status_code=200)
    async def search(data: JSONBody[IdNumberQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_signature")
        person = _BY_ID.get(data.id_number.upper())
        return _account(person if person is not None and person.social_security_number else None)

    def _account(person: SeedPerson | None) -> Response[Any]:
        if person is None or person.social_security_number is None:
            return error(404, "not_found")
        number = person.social_security_number
        seed = int(person.id_number[14:17])
        settlements = [
            {
                "settlement_id": f"MI{number[-6:]}{i:02d}",
                "settled_on": (dt.date(2026, 10, 1) - dt.timedelta(days=23 * i)).isoformat(),
                "institution": "深圳市人民医院" if i % 2 == 0 else "福田区社区健康服务中心",
                "total": 18_000 + 4_700 * i,
                "fund_paid": (18_000 + 4_700 * i) * 7 // 10,
                "self_paid": (18_000 + 4_700 * i) - (18_000 + 4_700 * i) * 7 // 10,
            }
            for i in range(3)
        ]
        return Response(
            {
                "social_security_number": number,
                "status": "active",
                "balance": 250_000 + seed * 137,
                "recent_settlements": settlements,
            }
        )

    del state
    return Router("/medical_insurance", route_handlers=[account, search])


def slot_times(today: dt.date) -> list[dt.datetime]:
    """The bookable times (China time, as UTC-aware datetimes) of the three days after ``today``."""
    times = []
    for day in range(1, 4):
        date = today + dt.timedelta(days=day)
        for hour, minute in ((9, 0), (9, 30), (10, 0), (10, 30)):
            times.append(dt.datetime(date.year, date.month, date.day, hour, minute, tzinfo=_CHINA))
    return [t.astimezone(dt.UTC) for t in times]


class BookingRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    health_card_id: str
    slot_id: str


def health_router(state: UpstreamState, client_secret: str) -> Router:
    token, authorised = oauth(state, client_secret)

    def slots(department_id: str) -> dict[str, dt.datetime]:
        today = dt.datetime.now(_CHINA).date()
        return {f"{department_id}-{t.astimezone(_CHINA):%Y%m%d-%H%M}": t for t in slot_times(today)}

    @get("/v1/records/{card:str}", operation_id="HealthRecord")
    async def record(card: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token")
        return _record(_CARDS.get(card))

    @post("/v1/records/search", operation_id="HealthRecordSearch", status_code=200)
    async def search(data: JSONBody[IdNumberQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token")
        return _record(_BY_ID.get(data.id_number.upper()))

    def _record(person: SeedPerson | None) -> Response[Any]:
        if person is None or person.health_card_id is None:
            return error(404, "not_found")
        card = person.health_card_id
        senior = int(person.id_number[6:10]) < 1960
        return Response(
            {
                "health_card_id": card,
                "blood_type": ("A", "B", "O", "AB")[int(person.id_number[16]) % 4],
                "allergies": ["青霉素"] if person.gender == "F" else [],
                "chronic_conditions": ["高血压"] if senior else [],
                "last_visit": {"on": "2026-10-12", "hospital": "深圳市人民医院", "department": "内科"},
            }
        )

    @get("/v1/departments/{department_id:str}/slots", operation_id="HealthSlots")
    async def free_slots(department_id: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token")
        department = _DEPARTMENTS.get(department_id)
        if department is None:
            return error(404, "not_found")
        listed = [
            {
                "slot_id": slot_id,
                "starts_at": at.isoformat(),
                "available": slot_id not in state.store.get("by_slot", {}),
            }
            for slot_id, at in slots(department_id).items()
        ]
        return Response(
            {
                "department_id": department_id,
                "hospital": department.hospital,
                "name": department.name,
                "slots": listed,
            }
        )

    @post("/v1/appointments", operation_id="HealthBook")
    async def book(data: JSONBody[BookingRequest], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token")
        by_slot: dict[str, dict[str, Any]] = state.store.setdefault("by_slot", {})
        by_key: dict[str, dict[str, Any]] = state.store.setdefault("by_key", {})
        key = request.headers.get("idempotency-key")
        if key and key in by_key:
            return Response(by_key[key], status_code=201)
        if data.health_card_id not in _CARDS:
            return error(422, "unknown_card")
        department_id = data.slot_id.rsplit("-", 2)[0]
        department = _DEPARTMENTS.get(department_id)
        starts_at = slots(department_id).get(data.slot_id) if department else None
        if department is None or starts_at is None:
            return error(422, "unknown_slot")
        if data.slot_id in by_slot:
            return error(409, "slot_taken")
        appointment = {
            "appointment_id": f"AP{len(by_slot) + 1:06d}",
            "health_card_id": data.health_card_id,
            "slot_id": data.slot_id,
            "hospital": department.hospital,
            "department": department.name,
            "starts_at": starts_at.isoformat(),
            "status": "booked",
        }
        by_slot[data.slot_id] = appointment
        if key:
            by_key[key] = appointment
        return Response(appointment, status_code=201)

    @get("/v1/appointments", operation_id="HealthAppointments")
    async def appointments(health_card_id: FromQuery[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_token")
        mine = [a for a in state.store.get("by_slot", {}).values() if a["health_card_id"] == health_card_id]
        return Response({"appointments": mine})

    return Router("/health", route_handlers=[token, record, search, free_slots, book, appointments])
