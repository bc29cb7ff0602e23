"""Connectors to medical insurance (医保, signed requests) and health (OAuth client credentials).

Health appointment booking changes something, so it carries an ``Idempotency-Key`` that the
upstream honours: with the key the booking may be retried like a read, and a retried booking
returns the first one's appointment instead of booking twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Unpack
from urllib.parse import quote

import httpx
import msgspec

from integrations.connectors.auth import ClientCredentials, SignedRequests
from integrations.connectors.base import Connector, ConnectorOptions
from integrations.connectors.cache import CachePolicy
from integrations.connectors.calls import Fetched, Lookup, Operation, answer, answer_or_none, same
from integrations.errors import SlotTaken, UnknownAtUpstream

__all__ = [
    "Appointment",
    "HealthConnector",
    "HealthRecord",
    "MedicalInsuranceAccount",
    "MedicalInsuranceConnector",
    "Settlement",
    "Slot",
    "SlotList",
    "account_by_id_number",
    "record_by_id_number",
]


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    settlement_id: str
    settled_on: dt.date
    institution: str
    total: int  # fen
    fund_paid: int
    self_paid: int


class MedicalInsuranceAccount(msgspec.Struct, frozen=True, kw_only=True):
    social_security_number: str
    status: Literal["active", "suspended"]
    balance: int  # fen
    recent_settlements: tuple[Settlement, ...] = ()


class LastVisit(msgspec.Struct, frozen=True, kw_only=True):
    on: dt.date
    hospital: str
    department: str


class HealthRecord(msgspec.Struct, frozen=True, kw_only=True):
    health_card_id: str
    blood_type: Literal["A", "B", "O", "AB"] | None = None
    allergies: tuple[str, ...] = ()
    chronic_conditions: tuple[str, ...] = ()
    last_visit: LastVisit | None = None


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    slot_id: str
    starts_at: dt.datetime
    available: bool


class SlotList(msgspec.Struct, frozen=True, kw_only=True):
    department_id: str
    hospital: str
    name: str
    slots: tuple[Slot, ...]


class Appointment(msgspec.Struct, frozen=True, kw_only=True):
    appointment_id: str
    health_card_id: str
    slot_id: str
    hospital: str
    department: str
    starts_at: dt.datetime
    status: Literal["booked", "cancelled", "attended"]


class _Appointments(msgspec.Struct, frozen=True):
    appointments: tuple[Appointment, ...]


def _booking(response: httpx.Response) -> Appointment:
    if response.status_code == 409:
        raise SlotTaken("the slot was taken by someone else")
    if response.status_code == 422:
        raise UnknownAtUpstream("the hospital does not know this card or slot")
    return _booked(response)


_booked = answer(Appointment, same, ok=201)


def _cached(name: str, kind: Any, ttl: float, stale: float, keep: float = 0.0) -> Operation[Any]:
    """A read answering ``kind`` or None (404)."""
    policy = CachePolicy(ttl=ttl, stale=stale, keep=keep)
    return Operation(name, answer_or_none(kind, same), kind | None, cache=policy)


_WEEK = 7 * 86_400.0  # how long a last-known value is kept for when the upstream is down

ACCOUNT: Operation[MedicalInsuranceAccount | None] = _cached("account", MedicalInsuranceAccount, 60.0, 3600.0)
RECORD: Operation[HealthRecord | None] = _cached("record", HealthRecord, 300.0, 86_400.0)
ACCOUNT_OF_PERSON: Operation[MedicalInsuranceAccount | None] = _cached(
    "account_of_person", MedicalInsuranceAccount, 60.0, 3600.0, _WEEK
)
RECORD_OF_PERSON: Operation[HealthRecord | None] = _cached(
    "record_of_person", HealthRecord, 300.0, 86_400.0, _WEEK
)
SLOTS: Operation[SlotList | None] = _cached("slots", SlotList, 30.0, 300.0)
BOOK = Operation("book", _booking, Appointment, idempotent=True)  # with its Idempotency-Key
APPOINTMENTS = Operation(
    "appointments", answer(_Appointments, lambda a: a.appointments), tuple[Appointment, ...]
)


def account_by_id_number(id_number: str) -> Lookup[MedicalInsuranceAccount | None]:
    """By resident ID number (in the body: no ID number in a URL)."""
    return Lookup.search(ACCOUNT_OF_PERSON, "/v1/accounts/search", "id_number", id_number)


def record_by_id_number(id_number: str) -> Lookup[HealthRecord | None]:
    """The record of the person's resident health card, if any, by resident ID number."""
    return Lookup.search(RECORD_OF_PERSON, "/v1/records/search", "id_number", id_number)


class MedicalInsuranceConnector(Connector):
    personal_data = True  # sealed in the cache (``Connector.personal_data``)

    def __init__(self, *, signing_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="medical_insurance", auth=SignedRequests(signing_key), **options)

    async def account(self, social_security_number: str) -> Fetched[MedicalInsuranceAccount | None]:
        number = social_security_number.strip()
        return await self.get(Lookup(ACCOUNT, f"/v1/accounts/{quote(number, safe='')}", number))

    async def account_of_person(self, id_number: str) -> Fetched[MedicalInsuranceAccount | None]:
        return await self.get(account_by_id_number(id_number))


class HealthConnector(Connector):
    personal_data = True  # sealed in the cache (``Connector.personal_data``)

    def __init__(self, *, client_secret: str, **options: Unpack[ConnectorOptions]) -> None:
        auth = ClientCredentials(f"{options['base_url']}/oauth/token", client_secret)
        super().__init__(name="health", auth=auth, **options)

    async def record(self, health_card_id: str) -> Fetched[HealthRecord | None]:
        card = health_card_id.strip()
        return await self.get(Lookup(RECORD, f"/v1/records/{quote(card, safe='')}", card))

    async def record_of_person(self, id_number: str) -> Fetched[HealthRecord | None]:
        return await self.get(record_by_id_number(id_number))

    async def slots(self, department_id: str) -> Fetched[SlotList | None]:
        path = f"/v1/departments/{quote(department_id, safe='')}/slots"
        return await self.get(Lookup(SLOTS, path, department_id))

    async def book(self, health_card_id: str, slot_id: str, idempotency_key: str) -> Appointment:
        body = {"health_card_id": health_card_id, "slot_id": slot_id}
        headers = {"Idempotency-Key": idempotency_key}
        return (await self.fetch(BOOK, "/v1/appointments", method="POST", body=body, headers=headers)).value

    async def appointments(self, health_card_id: str) -> tuple[Appointment, ...]:
        path = f"/v1/appointments?health_card_id={quote(health_card_id, safe='')}"
        return (await self.fetch(APPOINTMENTS, path)).value
