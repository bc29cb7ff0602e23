"""Connectors to medical insurance (医保, signed requests) and health (OAuth client credentials).

Health appointment booking changes something, so it carries an ``Idempotency-Key`` that the
upstream honours: with the key the booking may be retried like a read, and a retried booking
returns the first one's appointment instead of booking twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors.auth import ClientCredentials, SignedRequests
from integrations.connectors.base import Connector, ConnectorPolicy, Fetched, Operation, expect_status
from integrations.connectors.cache import CachePolicy, GetBatcher
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


S = TypeVar("S", bound=msgspec.Struct)


def _optional(kind: type[S]) -> Callable[[httpx.Response], S | None]:
    """200: the Struct; 404: None."""
    decoder = msgspec.json.Decoder(kind)

    def decode(response: httpx.Response) -> S | None:
        expect_status(response, 200, 404)
        return None if response.status_code == 404 else decoder.decode(response.content)

    return decode


def _decode_booking(response: httpx.Response) -> Appointment:
    if response.status_code == 409:
        raise SlotTaken("the slot was taken by someone else")
    if response.status_code == 422:
        raise UnknownAtUpstream("the hospital does not know this card or slot")
    expect_status(response, 201)
    return msgspec.json.decode(response.content, type=Appointment)


def _decode_appointments(response: httpx.Response) -> tuple[Appointment, ...]:
    expect_status(response, 200)
    return msgspec.json.decode(response.content, type=_Appointments).appointments


ACCOUNT: Operation[MedicalInsuranceAccount | None] = Operation(
    "account",
    _optional(MedicalInsuranceAccount),
    MedicalInsuranceAccount | None,
    cache=CachePolicy(ttl=60.0, stale=3600.0),
)
RECORD: Operation[HealthRecord | None] = Operation(
    "record",
    _optional(HealthRecord),
    HealthRecord | None,
    cache=CachePolicy(ttl=300.0, stale=86_400.0),
)
ACCOUNT_OF_PERSON: Operation[MedicalInsuranceAccount | None] = Operation(
    "account_of_person",
    _optional(MedicalInsuranceAccount),
    MedicalInsuranceAccount | None,
    cache=CachePolicy(ttl=60.0, stale=3600.0, keep=7 * 86_400.0),
)
RECORD_OF_PERSON: Operation[HealthRecord | None] = Operation(
    "record_of_person",
    _optional(HealthRecord),
    HealthRecord | None,
    cache=CachePolicy(ttl=300.0, stale=86_400.0, keep=7 * 86_400.0),
)
SLOTS: Operation[SlotList | None] = Operation(
    "slots",
    _optional(SlotList),
    SlotList | None,
    cache=CachePolicy(ttl=30.0, stale=300.0),
)
BOOK = Operation("book", _decode_booking, Appointment, idempotent=True)  # with its Idempotency-Key
APPOINTMENTS = Operation("appointments", _decode_appointments, tuple[Appointment, ...])


class MedicalInsuranceConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        signing_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
    ) -> None:
        super().__init__(
            name="medical_insurance",
            base_url=base_url,
            redis=redis,
            auth=SignedRequests(signing_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
        )

    async def account(self, social_security_number: str) -> Fetched[MedicalInsuranceAccount | None]:
        number = social_security_number.strip()
        return await self.fetch(ACCOUNT, f"/v1/accounts/{quote(number, safe='')}", cache_key=number)

    async def account_of_person(self, id_number: str) -> Fetched[MedicalInsuranceAccount | None]:
        """By resident ID number (in the body: no ID number in a URL)."""
        number = id_number.strip().upper()
        body = {"id_number": number}
        return await self.fetch(
            ACCOUNT_OF_PERSON, "/v1/accounts/search", method="POST", body=body, cache_key=number
        )


class HealthConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        client_secret: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
    ) -> None:
        super().__init__(
            name="health",
            base_url=base_url,
            redis=redis,
            auth=ClientCredentials(f"{base_url}/oauth/token", client_secret),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
        )

    async def record(self, health_card_id: str) -> Fetched[HealthRecord | None]:
        card = health_card_id.strip()
        return await self.fetch(RECORD, f"/v1/records/{quote(card, safe='')}", cache_key=card)

    async def record_of_person(self, id_number: str) -> Fetched[HealthRecord | None]:
        """By resident ID number: the record of the person's resident health card, if any."""
        number = id_number.strip().upper()
        body = {"id_number": number}
        path = "/v1/records/search"
        return await self.fetch(RECORD_OF_PERSON, path, method="POST", body=body, cache_key=number)

    async def slots(self, department_id: str) -> Fetched[SlotList | None]:
        path = f"/v1/departments/{quote(department_id, safe='')}/slots"
        return await self.fetch(SLOTS, path, cache_key=department_id)

    async def book(self, health_card_id: str, slot_id: str, idempotency_key: str) -> Appointment:
        body = {"health_card_id": health_card_id, "slot_id": slot_id}
        headers = {"Idempotency-Key": idempotency_key}
        return (await self.fetch(BOOK, "/v1/appointments", method="POST", body=body, headers=headers)).value

    async def appointments(self, health_card_id: str) -> tuple[Appointment, ...]:
        path = f"/v1/appointments?health_card_id={quote(health_card_id, safe='')}"
        return (await self.fetch(APPOINTMENTS, path)).value
