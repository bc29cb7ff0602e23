"""The service catalogue (search, availability from the breakers) and the inbox (notify, read,
unread counts, organisations' inboxes, application status changes)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from integrations.connectors.breaker import CircuitBreaker
from integrations.messages import Recipient, notify
from integrations.messages.applications import poll_applications
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import ENTERPRISES, PEOPLE
from integrations.wiring import Connectors
from tests.integrations.citizens import Citizens, bearer, tiles

ZHANG = PEOPLE[0]


async def _ids(client: AsyncTestClient[Litestar], **params: str) -> list[str]:
    response = await client.get("/api/v1/services", params=params)
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["services"]]


async def test_the_catalogue_is_searchable_in_both_languages(
    entrance_client: AsyncTestClient[Litestar],
) -> None:
    everything = await _ids(entrance_client)
    assert len(everything) == 13
    assert everything[0] == "citizen-card"
    assert await _ids(entrance_client, q="社保") == ["social-security"]
    assert await _ids(entrance_client, q="Bus") == ["bus-arrivals", "organisation-licences"]  # "business"
    assert set(await _ids(entrance_client, q="证照")) == {"e-licences", "organisation-licences"}
    assert await _ids(entrance_client, q="electricity bill") == ["utility-bills"]
    assert await _ids(entrance_client, q="nothing-like-this") == []
    assert set(await _ids(entrance_client, category="government")) == {
        "gov-applications",
        "e-licences",
        "organisation-licences",
    }
    organisation = await _ids(entrance_client, audience="organisation")
    expected = {"bus-arrivals", "enterprise-registration", "organisation-licences", "messages"}
    assert set(organisation) == expected
    one = (await entrance_client.get("/api/v1/services/health-record")).json()
    assert (one["min_loa"], one["audience"], one["availability"]) == (2, ["person"], "available")
    assert (await entrance_client.get("/api/v1/services/nope")).status_code == 404
    assert (await entrance_client.get("/api/v1/services", params={"audience": "robot"})).status_code == 422


async def test_availability_follows_the_connectors_breaker(
    entrance_client: AsyncTestClient[Litestar], redis_client: aioredis.Redis
) -> None:
    breaker = CircuitBreaker(redis_client, "social_security", threshold=1, cooldown=3600)
    await breaker.record_failure()
    listed = (await entrance_client.get("/api/v1/services", params={"category": "social_security"})).json()
    assert [(s["id"], s["availability"]) for s in listed["services"]] == [("social-security", "unavailable")]
    bus = (await entrance_client.get("/api/v1/services/bus-arrivals")).json()
    assert bus["availability"] == "available"


async def test_the_catalogue_is_edited_in_postgresql(
    entrance_client: AsyncTestClient[Litestar], db: asyncpg.Connection[Any]
) -> None:
    await db.execute("UPDATE integrations.services SET enabled = false WHERE id = 'bus-arrivals'")
    # The app re-reads its catalogue after CITIZEN_ENTRANCE_CATALOGUE_REFRESH (30 s by default).
    count = await db.fetchval("SELECT count(*) FROM integrations.services WHERE enabled")
    assert count == 12


async def test_notify_read_and_unread_counts(citizens: Citizens, db: asyncpg.Connection[Any]) -> None:
    client = citizens.client
    session = await citizens.verified(ZHANG)
    me = Recipient.person(uuid.UUID(session["account_id"]))
    first = await notify(db, me, "card.frozen", "市民卡已冻结", "已冻结。", {"card": "x"}, dedupe_key="e1")
    assert first is not None
    assert await notify(db, me, "card.frozen", "市民卡已冻结", "again", dedupe_key="e1") is None  # once
    async with db.transaction():  # joins the caller's transaction
        await notify(db, me, "payments.topup_credited", "充值到账", "¥50.00 已到账", {"amount": 5000})
    someone_else = Recipient.person(uuid.uuid4())
    await notify(db, someone_else, "card.lost", "挂失", "not yours")
    headers = bearer(session["token"])
    page = (await client.get("/api/v1/messages", headers=headers)).json()
    assert [m["kind"] for m in page["messages"]] == ["payments.topup_credited", "card.frozen"]
    assert page["unread"] == 2
    assert page["messages"][0]["data"] == {"amount": 5000}
    assert (await citizens.home(session["token"]))["unread_messages"] == 2
    read = await client.post(f"/api/v1/messages/{first}/read", headers=headers)
    assert read.json() == {"unread": 1}
    assert (await client.post(f"/api/v1/messages/{uuid.uuid4()}/read", headers=headers)).status_code == 404
    unread_only = (await client.get("/api/v1/messages", params={"unread": "true"}, headers=headers)).json()
    assert [m["kind"] for m in unread_only["messages"]] == ["payments.topup_credited"]
    paged = (await client.get("/api/v1/messages", params={"limit": "1"}, headers=headers)).json()
    assert paged["next_cursor"] is not None
    rest = await client.get("/api/v1/messages", params={"cursor": paged["next_cursor"]}, headers=headers)
    assert [m["kind"] for m in rest.json()["messages"]] == ["card.frozen"]
    bad = await client.get("/api/v1/messages", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 400
    assert (await client.post("/api/v1/messages/read", headers=headers)).json() == {"marked": 1}
    assert (await client.get("/api/v1/messages/unread-count", headers=headers)).json() == {"unread": 0}


async def test_an_organisations_inbox_is_its_own(citizens: Citizens, db: asyncpg.Connection[Any]) -> None:
    session = await citizens.verified(ZHANG)
    org_id = await citizens.organisation(session["token"], ENTERPRISES[0])
    await notify(db, Recipient.organisation(uuid.UUID(org_id)), "gov.licence_renewed", "营业执照", "已换证")
    headers = bearer(session["token"])
    assert (await citizens.client.get("/api/v1/messages/unread-count", headers=headers)).json()["unread"] == 0
    await citizens.act_for(session["token"], org_id)
    assert (await citizens.client.get("/api/v1/messages/unread-count", headers=headers)).json()["unread"] == 1
    assert (await citizens.home(session["token"]))["unread_messages"] == 1


async def test_application_status_changes_become_messages(
    citizens: Citizens,
    upstreams: SimulatorControl,
    registries: Connectors,
    database_url: str,
    keyring: Keyring,
) -> None:
    session = await citizens.verified(ZHANG)
    page = await citizens.home(session["token"])  # the first sight: recorded, no message
    assert tiles(page)["applications"]["status"] == "ok"
    assert page["unread_messages"] == 0
    control = upstreams.urls["gov_services"]
    import httpx

    async with httpx.AsyncClient() as http:
        changed = await http.post(
            f"{control}/v1/_status", json={"application_id": "GS-2026-000101", "status": "approved"}
        )
        assert changed.status_code == 200
    account = uuid.UUID(session["account_id"])

    async def id_number_of(person: uuid.UUID) -> str | None:
        return ZHANG.id_number if person == account else None

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await _settle(citizens)
        assert await poll_applications(pool, registries, id_number_of) == (1, 1, 0)
        assert await poll_applications(pool, registries, id_number_of) == (1, 0, 0)  # told once
    finally:
        await pool.close()
    listed = (await citizens.client.get("/api/v1/messages", headers=bearer(session["token"]))).json()
    (message,) = listed["messages"]
    assert message["kind"] == "gov.application_status_changed"
    assert message["data"] == {"application_id": "GS-2026-000101", "from": "in_review", "to": "approved"}
    assert "已通过" in message["body"]


async def _settle(citizens: Citizens) -> None:
    """Let the home's background recording of what it saw finish."""
    app: Any = citizens.client.app
    await app.dependencies["entrance"].dependency().settle()
