"""Real-name verification against the population registry (the simulator, over HTTP): L1 -> L2."""

from __future__ import annotations

import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from integrations.simulators.control import SimulatorControl
from tests.identity.conftest import API, LI, QIAN, WANG, ZHANG, Flows, bearer


async def _verify(client: AsyncTestClient[Litestar], token: str, name: str, id_number: str) -> httpx.Response:
    return await client.post(
        f"{API}/me/verification", json={"name": name, "id_number": id_number}, headers=bearer(token)
    )


async def test_verification_raises_account_and_session_to_l2(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    l1 = await flows.register(ZHANG.mobile)
    l2 = await flows.verify(l1["token"], ZHANG)
    assert l2["loa"] == 2 and l2["session_id"] == l1["session_id"]
    assert (await client.get(f"{API}/me", headers=bearer(l1["token"]))).status_code == 401  # rotated
    me = (await client.get(f"{API}/me", headers=bearer(l2["token"]))).json()
    assert me["level"] == 2 and me["id_number"] == "440***********123X" and me["name"] == "张*"


async def test_lowercase_x_is_accepted_and_normalised(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    l1 = await flows.register(WANG.mobile)
    response = await _verify(client, l1["token"], WANG.name, WANG.id_number.lower())
    assert response.status_code == 200, response.text
    me = (await client.get(f"{API}/me", headers=bearer(response.json()["token"]))).json()
    assert me["id_number"].endswith("002X")


@pytest.mark.parametrize(
    ("id_number", "rule"),
    [
        ("440304199003071231", "check_character"),
        ("44030419900307123", "length"),
        ("440304900307123", "legacy_format"),
        ("99030419900307123X"[:17] + "0", "check_character"),
        ("440304209901011238", "birth_date_future"),
        ("440304199002301234", "birth_date"),
    ],
)
async def test_invalid_id_numbers_are_422_with_the_rule(
    client: AsyncTestClient[Litestar], flows: Flows, id_number: str, rule: str
) -> None:
    from identity.checks import resident_id_check_char

    if rule in {"birth_date_future", "birth_date"}:  # give them a valid check character
        id_number = id_number[:17] + resident_id_check_char(id_number[:17])
    l1 = await flows.register(ZHANG.mobile)
    response = await _verify(client, l1["token"], ZHANG.name, id_number)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["field"], error["rule"]) == ("id_number", rule)
    assert id_number not in response.text


async def test_registry_disagreements_are_422(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    l1 = await flows.register(ZHANG.mobile)
    response = await _verify(client, l1["token"], "张四", ZHANG.id_number)
    assert response.status_code == 422
    assert response.json()["errors"][0]["rule"] == "registry_name_mismatch"
    response = await _verify(client, l1["token"], QIAN.name, QIAN.id_number)
    assert response.json()["errors"][0]["rule"] == "registry_deceased"
    me = (await client.get(f"{API}/me", headers=bearer(l1["token"]))).json()
    assert me["level"] == 1


async def test_one_id_number_one_account(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    await flows.verified(ZHANG)
    other = await flows.register(LI.mobile)
    response = await _verify(client, other["token"], ZHANG.name, ZHANG.id_number)
    assert response.status_code == 409
    again = await flows.login_code(ZHANG.mobile)
    response = await _verify(client, again["token"], ZHANG.name, ZHANG.id_number)
    assert response.status_code == 409  # already verified


async def test_registry_outage_is_503_and_costs_no_attempt(
    client: AsyncTestClient[Litestar], flows: Flows, upstreams: SimulatorControl, redis_client: aioredis.Redis
) -> None:
    l1 = await flows.register(ZHANG.mobile)
    await upstreams.set("population", outage=True)
    for _ in range(6):
        response = await _verify(client, l1["token"], ZHANG.name, ZHANG.id_number)
        assert response.status_code == 503
    assert int(await redis_client.get(f"identity:fail:{l1['account_id']}") or 0) == 0


async def test_verification_needs_a_session(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(f"{API}/me/verification", json={"name": "x", "id_number": ZHANG.id_number})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
