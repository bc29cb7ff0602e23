"""The home's card summary and unread count kept in Redis (invalidated by NOTIFY citizen_home,
PostgreSQL when missing); the inbox fed by hospital booking with the card's health application
and by the application-status poll. Redis is read to see what the app keeps there; events, not
clocks, are waited for."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.messages import Recipient, notify
from integrations.messages.poll import poll_once
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import PEOPLE
from tests.integrations.citizens import Citizens, bearer, tiles

ZHANG, LI = PEOPLE[0], PEOPLE[1]


async def _gen(redis_client: aioredis.Redis, owner: str) -> int:
    raw = await redis_client.get(f"citizen:home:gen:{owner}")
    return int(raw or 0)


async def _bumped(redis_client: aioredis.Redis, owner: str, since: int) -> None:
    """Until the listener has heard the commit (it bumps the owner's generation)."""
    for _ in range(2_000):
        if await _gen(redis_client, owner) > since:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"no NOTIFY citizen_home for {owner}")


async def test_the_summary_is_kept_in_redis_and_a_commit_elsewhere_invalidates_it(
    citizens: Citizens, db: asyncpg.Connection[Any], redis_client: aioredis.Redis
) -> None:
    session = await citizens.verified(ZHANG, card=True)
    owner = f"person:{session['account_id']}"
    first = await citizens.home(session["token"])
    assert first["unread_messages"] == 0
    assert await redis_client.exists(f"citizen:home:glance:{owner}")  # kept for the next page
    gen = await _gen(redis_client, owner)
    me = Recipient.person(uuid.UUID(session["account_id"]))
    async with db.transaction():  # another domain's event, in its own transaction
        await notify(db, me, "payments.topup_credited", "充值到账", "¥50.00 已到账", {"amount": 5000})
        assert await _gen(redis_client, owner) == gen  # nothing said before the commit
    await _bumped(redis_client, owner, gen)
    assert (await citizens.home(session["token"]))["unread_messages"] == 1


async def test_a_rolled_back_event_leaves_the_summary_current(
    citizens: Citizens, db: asyncpg.Connection[Any], redis_client: aioredis.Redis
) -> None:
    session = await citizens.verified(ZHANG)
    owner = f"person:{session['account_id']}"
    await citizens.home(session["token"])
    gen = await _gen(redis_client, owner)
    me = Recipient.person(uuid.UUID(session["account_id"]))
    transaction = db.transaction()
    await transaction.start()
    await notify(db, me, "card.frozen", "市民卡已冻结", "已冻结。")
    await transaction.rollback()
    # A later committed event to someone else, heard after anything the rollback could have sent.
    other = f"person:{uuid.uuid4()}"
    await notify(db, Recipient.person(uuid.UUID(other.split(":")[1])), "card.lost", "挂失", "x")
    await _bumped(redis_client, other, 0)
    assert await _gen(redis_client, owner) == gen
    assert (await citizens.home(session["token"]))["unread_messages"] == 0


async def test_freezing_the_card_shows_on_the_next_home(
    citizens: Citizens, redis_client: aioredis.Redis
) -> None:
    session = await citizens.verified(ZHANG, card=True)
    owner = f"person:{session['account_id']}"
    assert tiles(await citizens.home(session["token"]))["card"]["data"]["status"] == "active"
    gen = await _gen(redis_client, owner)
    frozen = await citizens.client.post("/api/v1/cards/me/freeze", headers=bearer(session["token"]))
    assert frozen.status_code == 200, frozen.text
    await _bumped(redis_client, owner, gen)
    page = await citizens.home(session["token"])
    assert tiles(page)["card"]["data"]["status"] == "frozen"
    assert page["unread_messages"] == 1  # card.frozen, from card's lifecycle


async def test_booking_an_appointment_with_the_card_tells_the_inbox_once(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    session = await citizens.verified(ZHANG, card=True)
    headers = bearer(session["token"])
    slots = await entrance_client.get("/api/v1/health/departments/SZPH-IM/slots", headers=headers)
    assert slots.status_code == 200, slots.text
    slot = next(s for s in slots.json()["slots"] if s["available"])["slot_id"]
    booked = await entrance_client.post(
        "/api/v1/health/appointments", json={"slot_id": slot}, headers=headers
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["health_card_id"] == ZHANG.health_card_id
    assert appointment["status"] == "booked"
    assert appointment["department"] == "内科"
    again = await entrance_client.post("/api/v1/health/appointments", json={"slot_id": slot}, headers=headers)
    assert again.status_code == 201
    assert again.json()["appointment_id"] == appointment["appointment_id"]  # the same booking
    inbox = (await entrance_client.get("/api/v1/messages", headers=headers)).json()
    assert [m["kind"] for m in inbox["messages"]] == ["health.appointment_booked"]
    assert inbox["messages"][0]["data"]["appointment_id"] == appointment["appointment_id"]
    assert (await citizens.home(session["token"]))["unread_messages"] == 1
    mine = (await entrance_client.get("/api/v1/health/appointments", headers=headers)).json()
    assert [a["appointment_id"] for a in mine["appointments"]] == [appointment["appointment_id"]]


async def test_booking_needs_an_active_health_application_and_a_free_slot(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    zhang = await citizens.verified(ZHANG, card=True)
    li = await citizens.verified(LI)  # no card yet
    slots = await entrance_client.get(
        "/api/v1/health/departments/SZPH-DERM/slots", headers=bearer(zhang["token"])
    )
    slot = slots.json()["slots"][0]["slot_id"]
    no_card = await entrance_client.post(
        "/api/v1/health/appointments", json={"slot_id": slot}, headers=bearer(li["token"])
    )
    assert no_card.status_code == 409
    assert no_card.json()["type"].endswith("/no-active-health-card")
    first = await entrance_client.post(
        "/api/v1/health/appointments", json={"slot_id": slot}, headers=bearer(zhang["token"])
    )
    assert first.status_code == 201
    issued = await entrance_client.post("/api/v1/cards", headers=bearer(li["token"]))
    assert issued.status_code == 201, issued.text
    taken = await entrance_client.post(
        "/api/v1/health/appointments", json={"slot_id": slot}, headers=bearer(li["token"])
    )
    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/appointment-slot-taken")
    unknown = await entrance_client.get("/api/v1/health/departments/NOPE/slots", headers=bearer(li["token"]))
    assert unknown.status_code == 404


async def test_the_poll_command_tells_the_inbox_of_a_changed_application(
    citizens: Citizens,
    upstreams: SimulatorControl,
    entrance_settings: Settings,
    keyring: Keyring,
    database_url: str,
    redis_client: aioredis.Redis,
) -> None:
    """``citizen messages poll``'s pass (``poll_once``), after the home first saw the applications."""
    session = await citizens.verified(ZHANG)
    page = await citizens.home(session["token"])  # the first sight: recorded, no message
    assert page["unread_messages"] == 0
    app: Any = citizens.client.app
    await app.dependencies["entrance"].dependency().settle()
    async with httpx.AsyncClient() as http:
        changed = await http.post(
            f"{upstreams.urls['gov_services']}/v1/_status",
            json={"application_id": "GS-2026-000101", "status": "completed"},
        )
        assert changed.status_code == 200
    owner = f"person:{session['account_id']}"
    gen = int(await redis_client.get(f"citizen:home:gen:{owner}") or 0)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        lines = await poll_once(pool, redis_client, entrance_settings, keyring)
    finally:
        await pool.close()
    assert lines == ["polled 1 people: 1 status changes notified, 0 upstream failures"]
    await _bumped(redis_client, owner, gen)
    page = await citizens.home(session["token"])
    assert page["unread_messages"] == 1
    inbox = (await citizens.client.get("/api/v1/messages", headers=bearer(session["token"]))).json()
    assert [m["kind"] for m in inbox["messages"]] == ["gov.application_status_changed"]
    assert inbox["messages"][0]["data"]["to"] == "completed"
