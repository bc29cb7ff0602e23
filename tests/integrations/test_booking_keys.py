"""A client's Idempotency-Key for a hospital booking is the person's own: the health upstream,
which keeps one space of keys for our whole app, gets it scoped to the person, and a key used
again for another slot is refused (422 ``idempotency-key-reused``) and told to no inbox."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from integrations.simulators.seed import PEOPLE
from tests.integrations.citizens import Citizens, bearer

ZHANG, LI = PEOPLE[0], PEOPLE[1]
BOOK = "/api/v1/health/appointments"


async def _free_slots(client: AsyncTestClient[Litestar], token: str, department: str) -> list[str]:
    slots = await client.get(f"/api/v1/health/departments/{department}/slots", headers=bearer(token))
    assert slots.status_code == 200, slots.text
    return [s["slot_id"] for s in slots.json()["slots"] if s["available"]]


async def _book(client: AsyncTestClient[Litestar], token: str, slot: str, key: str) -> Any:
    return await client.post(BOOK, json={"slot_id": slot}, headers={**bearer(token), "Idempotency-Key": key})


async def _first_booking(
    citizens: Citizens, client: AsyncTestClient[Litestar], key: str
) -> tuple[dict[str, Any], list[str], Any]:
    """Zhang, verified with a card, books the first free internal-medicine slot with ``key``: Zhang's
    session, the free slots, the booking."""
    zhang = await citizens.verified(ZHANG, card=True)
    free = await _free_slots(client, zhang["token"], "SZPH-IM")
    first = await _book(client, zhang["token"], free[0], key)
    assert first.status_code == 201, first.text
    return zhang, free, first


async def _inbox(client: AsyncTestClient[Litestar], token: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = (await client.get("/api/v1/messages", headers=bearer(token))).json()[
        "messages"
    ]
    return messages


async def test_two_people_with_the_same_key_each_book_their_own_slot(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    _, free, first = await _first_booking(citizens, entrance_client, "booking-0001")
    li = await citizens.verified(LI, card=True)
    second = await _book(entrance_client, li["token"], free[1], "booking-0001")  # a naive counter
    assert second.status_code == 201, second.text
    assert second.json()["health_card_id"] == LI.health_card_id
    assert second.json()["slot_id"] == free[1]
    assert second.json()["appointment_id"] != first.json()["appointment_id"]
    told = [m["data"]["appointment_id"] for m in await _inbox(entrance_client, li["token"])]
    assert told == [second.json()["appointment_id"]]


async def test_a_key_used_again_for_another_slot_is_refused(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    zhang, free, first = await _first_booking(citizens, entrance_client, "booking-0002")
    again = await _book(entrance_client, zhang["token"], free[0], "booking-0002")
    assert again.status_code == 201
    assert again.json()["appointment_id"] == first.json()["appointment_id"]  # a replay
    other = await _book(entrance_client, zhang["token"], free[1], "booking-0002")
    assert other.status_code == 422, other.text
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert len(await _inbox(entrance_client, zhang["token"])) == 1


async def test_an_answer_for_another_request_is_refused_and_told_to_no_inbox(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar], redis_client: aioredis.Redis
) -> None:
    zhang, free, first = await _first_booking(citizens, entrance_client, "booking-0003")
    # What the app remembers of its keys is gone (Redis flushed or failed over): the upstream
    # still replays the first booking for the key, which is not the slot asked for.
    forgotten = [key async for key in redis_client.scan_iter("citizen:idempotency:*")]
    assert forgotten
    await redis_client.delete(*forgotten)
    other = await _book(entrance_client, zhang["token"], free[1], "booking-0003")
    assert other.status_code == 422, other.text
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert first.json()["appointment_id"] not in other.text
    assert len(await _inbox(entrance_client, zhang["token"])) == 1


async def test_a_booking_the_hospital_refused_gives_its_key_back(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    zhang = await citizens.verified(ZHANG, card=True)
    li = await citizens.verified(LI, card=True)
    free = await _free_slots(entrance_client, zhang["token"], "SZPH-DERM")
    assert (await _book(entrance_client, li["token"], free[0], "li-first-01")).status_code == 201
    taken = await _book(entrance_client, zhang["token"], free[0], "booking-0004")
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/appointment-slot-taken")
    retried = await _book(entrance_client, zhang["token"], free[1], "booking-0004")
    assert retried.status_code == 201, retried.text
    assert retried.json()["slot_id"] == free[1]
