"""``/api/v1/health``: hospital slots and booking with the card's health application.

A booking goes to the health upstream (``HealthConnector.book``) with the resident health card ID
of the person's active card (card's ``health_card_of``), under an ``Idempotency-Key`` the upstream
honours, so a booking sent twice is one appointment. The key is the client's, or the slot's, but
never sent as it is: the upstream has one space of keys for our whole app, so it gets the key
scoped to the person (``IdempotencyKeys.upstream_key``), and the first request made with a key is
remembered: the same key with another slot is refused (422 ``idempotency-key-reused``). An answer
that is not the booking asked for (another card or slot) is refused the same way and told to no
inbox. The booked appointment becomes an inbox message (``health.appointment_booked``, once per
appointment), and the home's summary of that inbox is invalidated at once.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from identity.auth import Principal, requires_person
from integrations._db import Pool
from integrations.connectors.medical import Appointment, SlotList
from integrations.entrance.home import Entrance
from integrations.errors import (
    EntranceError,
    IdempotencyKeyReused,
    InvalidQuery,
    ServiceRefusal,
    UnknownAtUpstream,
)
from integrations.messages.store import Recipient, notify
from integrations.wiring import Connectors

__all__ = ["AppointmentsController", "BookAppointment", "NoHealthCard", "book_appointment"]

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]
_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_CHINA = ZoneInfo("Asia/Shanghai")


class NoHealthCard(EntranceError):
    problem_type = "no-active-health-card"
    problem_title = "No active health application on your card"
    problem_status = 409


class BookAppointment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    slot_id: str


class AppointmentList(msgspec.Struct, frozen=True, kw_only=True):
    appointments: list[Appointment]


async def book_appointment(
    pool: Pool, connectors: Connectors, person_id: uuid.UUID, slot_id: str, key: str | None = None
) -> Appointment:
    """Book ``slot_id`` with the person's health card and tell their inbox (once)."""
    from card.summary import health_card_of

    if not _ID.match(slot_id):
        raise InvalidQuery("slot_id: letters, digits and '-', at most 64")
    health_card_id = await health_card_of(pool, person_id)
    if health_card_id is None:
        raise NoHealthCard("book with an active card whose health application is active")
    keys = connectors.idempotency
    upstream_key = keys.upstream_key(str(person_id), key or f"slot:{slot_id}")
    request = msgspec.json.encode(BookAppointment(slot_id=slot_id))
    if not await keys.claim(upstream_key, request):
        raise IdempotencyKeyReused("this Idempotency-Key was first used to book another slot")
    try:
        appointment = await connectors.health.book(health_card_id, slot_id, upstream_key)
    except ServiceRefusal:
        await keys.release(upstream_key, request)  # nothing was booked: the key may book another slot
        raise
    if appointment.health_card_id != health_card_id or appointment.slot_id != slot_id:
        # The upstream replayed a booking made under this key for another request: not this one.
        raise IdempotencyKeyReused("this Idempotency-Key was first used for another booking")
    when = appointment.starts_at.astimezone(_CHINA)
    await notify(
        pool,
        Recipient.person(person_id),
        "health.appointment_booked",
        f"预约成功：{appointment.hospital}{appointment.department}",
        f"您已预约{appointment.hospital}{appointment.department}，就诊时间{when:%Y-%m-%d %H:%M}，"
        f"预约号 {appointment.appointment_id}。请携带市民卡按时就诊。",
        {
            "appointment_id": appointment.appointment_id,
            "hospital": appointment.hospital,
            "department": appointment.department,
            "starts_at": appointment.starts_at.astimezone(dt.UTC).isoformat(),
        },
        dedupe_key=f"health.appointment:{appointment.appointment_id}",
    )
    return appointment


class AppointmentsController(Controller):
    path = "/api/v1/health"
    tags = ["health"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @get("/departments/{department_id:str}/slots", operation_id="ListAppointmentSlots")
    async def slots(self, connectors: NamedDependency[Connectors], department_id: FromPath[str]) -> SlotList:
        """A department's bookable slots (cached for 30 s: ``available`` may lag a booking)."""
        if not _ID.match(department_id):
            raise InvalidQuery("department_id: letters, digits and '-', at most 64")
        found = (await connectors.health.slots(department_id)).value
        if found is None:
            raise UnknownAtUpstream("the health authority knows no such department")
        return found

    @post("/appointments", operation_id="BookAppointment", status_code=HTTP_201_CREATED)
    async def book(
        self,
        *,
        principal: NamedDependency[Principal],
        db_pool: NamedDependency[Pool],
        connectors: NamedDependency[Connectors],
        entrance: NamedDependency[Entrance],
        data: JSONBody[BookAppointment],
        idempotency_key: IdempotencyKey = None,
    ) -> Appointment:
        """Book a slot with your card's health application; the same request (or the same slot
        again) gives the same appointment, and your Idempotency-Key used with another slot is
        refused (422). The inbox tells you once."""
        if principal.acting_for is not None:
            raise NoHealthCard("appointments are booked for yourself, not for an organisation")
        if idempotency_key is not None and not 8 <= len(idempotency_key) <= 64:
            raise InvalidQuery("Idempotency-Key: 8 to 64 characters")
        appointment = await book_appointment(
            db_pool, connectors, principal.account_id, data.slot_id, idempotency_key
        )
        await entrance.changed(Recipient.person(principal.account_id))  # read your own writes
        return appointment

    @get("/appointments", operation_id="ListAppointments")
    async def mine(
        self,
        principal: NamedDependency[Principal],
        db_pool: NamedDependency[Pool],
        connectors: NamedDependency[Connectors],
    ) -> AppointmentList:
        from card.summary import health_card_of

        health_card_id = await health_card_of(db_pool, principal.account_id)
        if health_card_id is None:
            return AppointmentList(appointments=[])
        return AppointmentList(appointments=list(await connectors.health.appointments(health_card_id)))
