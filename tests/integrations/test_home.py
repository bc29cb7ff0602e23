"""The home page against the simulators: every tile, degraded tiles, the breaker's recovery, the
cache, organisations. Statuses and counters are asserted, never clocks."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings
from integrations.connectors.breaker import BreakerState, CircuitBreaker
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import ENTERPRISES, PEOPLE
from tests.integrations.citizens import Citizens, bearer, tiles

ZHANG, LI = PEOPLE[0], PEOPLE[1]
PERSON_TILES = [
    "card",
    "bus",
    "social_security",
    "medical_insurance",
    "health",
    "applications",
    "licences",
    "utilities",
]
UPSTREAMS = ("social_security", "medical_insurance", "health", "bus", "gov_services", "utilities")


async def test_the_citizens_home_shows_every_tile(citizens: Citizens) -> None:
    session = await citizens.verified(ZHANG, card=True)
    page = await citizens.home(session["token"])
    assert page["audience"] == "person"
    assert page["unread_messages"] == 0
    assert [t["id"] for t in page["tiles"]] == PERSON_TILES  # the catalogue's order
    shown = tiles(page)
    assert {name: t["status"] for name, t in shown.items()} == dict.fromkeys(PERSON_TILES, "ok")
    card = shown["card"]["data"]
    assert card["has_card"] is True
    assert card["status"] == "active"
    assert card["balance"] == 0
    assert card["card_number"].startswith("*")
    assert shown["social_security"]["data"]["insured"] is True
    assert shown["social_security"]["data"]["status"] == "contributing"
    assert shown["medical_insurance"]["data"]["balance"] > 0
    assert shown["health"]["data"]["health_card_id"] == ZHANG.health_card_id
    assert shown["bus"]["data"]["name"] == "市民中心"
    assert shown["applications"]["data"]["total"] == 2
    kinds = {lic["kind"] for lic in shown["licences"]["data"]["licences"]}
    assert kinds == {"resident_id", "driving_licence"}
    assert shown["utilities"]["data"]["accounts"] == 3
    assert shown["utilities"]["data"]["unpaid_total"] > 0


async def test_no_card_is_a_tile_state_and_the_stop_can_be_chosen(citizens: Citizens) -> None:
    session = await citizens.verified(ZHANG)
    page = await citizens.home(session["token"], stop_id="SZ-FT-003")
    shown = tiles(page)
    assert shown["card"]["status"] == "ok"
    assert shown["card"]["data"] == {
        "has_card": False,
        "card_id": None,
        "card_number": None,
        "status": None,
        "balance": None,
    }
    assert shown["bus"]["data"]["name"] == "车公庙"


async def test_a_person_at_level_one_sees_only_the_tiles_of_level_one(citizens: Citizens) -> None:
    token = await citizens.registered(ZHANG)
    page = await citizens.home(token)
    assert page["loa"] == 1
    assert [t["id"] for t in page["tiles"]] == ["bus"]


async def test_a_dead_and_a_slow_upstream_degrade_their_tiles_only(
    citizens: Citizens, upstreams: SimulatorControl
) -> None:
    # The outage starts before the card is issued: issuing looks the person up at social security,
    # and a fresh cached answer would (rightly) keep the tile "ok" through the outage.
    await upstreams.set("social_security", outage=True)
    session = await citizens.verified(ZHANG, card=True)
    await upstreams.set("bus", latency_ms=5_000)  # ten times the tile's budget
    page = await citizens.home(session["token"])
    shown = tiles(page)
    # Issuing already failed against the dead upstream, so its breaker may be open by now:
    # "unavailable" (not called) or "degraded" (called, failed) are both a degraded tile.
    assert shown["social_security"]["status"] in {"degraded", "unavailable"}
    assert shown["social_security"]["data"] is None
    assert "503" in shown["social_security"]["detail"] or "breaker" in shown["social_security"]["detail"]
    assert shown["bus"]["status"] == "degraded"
    assert "did not answer within" in shown["bus"]["detail"]
    others = {name: t["status"] for name, t in shown.items() if name not in {"social_security", "bus"}}
    assert set(others.values()) == {"ok"}


async def test_an_open_breaker_makes_the_tile_unavailable_without_calling_the_upstream(
    citizens: Citizens, upstreams: SimulatorControl
) -> None:
    session = await citizens.verified(ZHANG)
    await upstreams.set("social_security", outage=True)
    await citizens.home(session["token"])  # three attempts: the threshold (3) is reached
    seen = (await upstreams.view("social_security")).requests
    page = await citizens.home(session["token"])
    assert tiles(page)["social_security"]["status"] == "unavailable"
    assert "circuit breaker open" in tiles(page)["social_security"]["detail"]
    assert (await upstreams.view("social_security")).requests == seen


@pytest.mark.parametrize("breaker_cooldown", [0.0])
async def test_when_the_upstream_recovers_the_breaker_closes_again(
    citizens: Citizens, upstreams: SimulatorControl, redis_client: aioredis.Redis
) -> None:
    breaker = CircuitBreaker(redis_client, "social_security")  # the state every worker shares
    session = await citizens.verified(ZHANG)
    await upstreams.set("social_security", outage=True)
    await citizens.home(session["token"])
    # Opened; with a cool-down of 0 the next call is already the probe, so state() reads half-open.
    assert await redis_client.hget(breaker.key, "state") == b"open"
    assert await breaker.state() is BreakerState.HALF_OPEN
    # The next home lets one probe through; still down, so open again.
    assert tiles(await citizens.home(session["token"]))["social_security"]["status"] == "degraded"
    assert await redis_client.hget(breaker.key, "state") == b"open"
    await upstreams.set("social_security", outage=False)
    assert tiles(await citizens.home(session["token"]))["social_security"]["status"] == "ok"
    assert await breaker.state() is BreakerState.CLOSED


async def test_fresh_cached_tiles_make_no_upstream_call(
    citizens: Citizens, upstreams: SimulatorControl
) -> None:
    session = await citizens.verified(ZHANG, card=True)
    first = await citizens.home(session["token"])
    assert {t["status"] for t in first["tiles"]} == {"ok"}
    before = {name: await upstreams.data_requests(name) for name in UPSTREAMS}
    assert all(before.values())
    for _ in range(3):
        again = await citizens.home(session["token"])
        assert {t["status"] for t in again["tiles"]} == {"ok"}
    assert {name: await upstreams.data_requests(name) for name in UPSTREAMS} == before


async def test_a_degraded_tile_shows_the_last_known_value_with_its_age(
    citizens: Citizens, upstreams: SimulatorControl, redis_client: aioredis.Redis
) -> None:
    session = await citizens.verified(ZHANG)
    fresh = tiles(await citizens.home(session["token"]))["social_security"]
    await _age_cache_entries(redis_client, "social_security", days=3)  # past ttl and stale window
    await upstreams.set("social_security", outage=True)
    degraded = tiles(await citizens.home(session["token"]))["social_security"]
    assert degraded["status"] == "degraded"
    assert degraded["data"] == fresh["data"]
    assert degraded["age"] >= 3 * 86_400
    assert "503" in degraded["detail"]


async def _age_cache_entries(client: aioredis.Redis, connector: str, *, days: int) -> None:
    import msgspec

    from integrations.connectors.cache import CachedEntry

    keys = [k async for k in client.scan_iter(f"citizen:cache:{connector}:*") if not k.endswith(b":refresh")]
    assert keys
    for key in keys:
        raw = await client.get(key)
        assert isinstance(raw, bytes)
        entry = msgspec.msgpack.decode(raw, type=CachedEntry)
        older = CachedEntry(entry.fetched_at - days * 86_400, entry.body)
        await client.set(key, msgspec.msgpack.encode(older), keepttl=True)


async def test_acting_for_an_organisation_shows_its_tiles(citizens: Citizens) -> None:
    session = await citizens.verified(ZHANG, card=True)
    company = ENTERPRISES[0]
    org_id = await citizens.organisation(session["token"], company)
    assert (await citizens.act_for(session["token"], org_id)).status_code == 200
    page = await citizens.home(session["token"])
    assert page["audience"] == "organisation"
    assert page["organisation"]["credit_code"] == company.credit_code
    assert [t["id"] for t in page["tiles"]] == ["bus", "enterprise", "organisation_licences"]
    shown = tiles(page)
    assert {t["status"] for t in page["tiles"]} == {"ok"}
    assert shown["enterprise"]["data"]["name"] == company.name
    assert shown["enterprise"]["data"]["status"] == "active"
    assert [lic["kind"] for lic in shown["organisation_licences"]["data"]["licences"]] == ["business_licence"]
    # Back to himself: his own tiles again.
    assert (await citizens.act_for(session["token"], None)).status_code == 200
    assert tiles(await citizens.home(session["token"]))["card"]["data"]["has_card"] is True


async def test_an_agent_without_a_role_for_the_organisations_services_gets_403(
    citizens: Citizens, entrance_client: AsyncTestClient[Litestar]
) -> None:
    boss = await citizens.verified(ZHANG)
    org_id = await citizens.organisation(boss["token"], ENTERPRISES[0])
    agent = await citizens.verified(LI)
    # No role at all: identity refuses the context itself.
    assert (await citizens.act_for(agent["token"], org_id)).status_code == 403
    await citizens.appoint(boss["token"], org_id, LI, ["card_admin"], agent["token"])  # not "filings"
    assert (await citizens.act_for(agent["token"], org_id)).status_code == 200
    response = await entrance_client.get("/api/v1/home", headers=bearer(agent["token"]))
    assert response.status_code == 403
    assert response.json()["type"].endswith("/forbidden")


async def test_the_home_needs_a_signed_in_person(entrance_client: AsyncTestClient[Litestar]) -> None:
    assert (await entrance_client.get("/api/v1/home")).status_code == 401
    bad = await entrance_client.get("/api/v1/home", params={"stop_id": "../x"}, headers=bearer("nope"))
    assert bad.status_code == 401


async def test_a_warm_home_is_one_redis_read_besides_the_token(
    citizens: Citizens, redis_client: aioredis.Redis
) -> None:
    """Every tile's entry, the card summary and the unread count come back from one MGET: no
    per-tile GET, no breaker script, nothing written (Redis's own command counters say so)."""
    session = await citizens.verified(ZHANG, card=True)
    for _ in range(2):  # the first fills the caches, the second learns the utilities' bill keys
        await citizens.home(session["token"])
    before = await redis_client.info("commandstats")
    page = await citizens.home(session["token"])
    after = await redis_client.info("commandstats")
    assert {t["status"] for t in page["tiles"]} == {"ok"}

    def calls(stats: dict[str, Any], command: str) -> int:
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))

    assert calls(after, "mget") - calls(before, "mget") == 1
    assert calls(after, "hmget") - calls(before, "hmget") == 1  # the bearer token's session
    for command in ("get", "evalsha", "eval", "set", "incr"):
        assert calls(after, command) == calls(before, command), command


async def test_the_reference_still_describes_the_home(entrance_client: AsyncTestClient[Litestar]) -> None:
    """The page is encoded by the handler itself: the OpenAPI document must still name its shape."""
    document = (await entrance_client.get("/schema/openapi.json")).json()
    answer = document["paths"]["/api/v1/home"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["$ref"].endswith("/Home")
    assert "stop_id" in [p["name"] for p in document["paths"]["/api/v1/home"]["get"]["parameters"]]
    assert "/api/v1/health/appointments" in document["paths"]


async def test_a_catalogue_edit_changes_the_tiles_of_a_planned_page(
    entrance_settings: Settings, keyring: Keyring, db: asyncpg.Connection[Any]
) -> None:
    """The page is planned once per subject, but from the catalogue of the moment."""
    entrance = msgspec.structs.replace(entrance_settings.integrations.entrance, catalogue_refresh=0)
    settings = entrance_settings.replace(
        integrations=msgspec.structs.replace(entrance_settings.integrations, entrance=entrance)
    )
    async with AsyncTestClient(create_app(settings, keyring)) as client:
        citizens = Citizens(client)
        session = await citizens.verified(ZHANG)
        assert "bus" in tiles(await citizens.home(session["token"]))
        await db.execute("UPDATE integrations.services SET enabled = false WHERE id = 'bus-arrivals'")
        assert "bus" not in tiles(await citizens.home(session["token"]))
