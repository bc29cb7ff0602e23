"""Registration with a confirmed mobile: single-use codes (also concurrently); errors name field and rule."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.identity.conftest import API, LI, ZHANG, Flows, bearer


def _rule(response: httpx.Response) -> tuple[str, str]:
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    error = body["errors"][0]
    return error["field"], error["rule"]


async def test_register_reaches_l1_with_a_session(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    session = await flows.register(ZHANG.mobile)
    assert session["loa"] == 1 and session["token_type"] == "Bearer"
    me = (await client.get(f"{API}/me", headers=bearer(session["token"]))).json()
    assert me["level"] == 1 and me["mobile"] == "138****8000" and me["id_number"] is None
    whoami = (await client.get(f"{API}/session", headers=bearer(session["token"]))).json()
    assert whoami["loa"] == 1 and whoami["kind"] == "person" and whoami["acting_for"] is None


@pytest.mark.parametrize(
    ("mobile", "rule"),
    [("1380013800", "length"), ("12800138000", "prefix"), ("1380013800a", "charset")],
)
async def test_bad_mobile_is_422_naming_field_and_rule(
    client: AsyncTestClient[Litestar], mobile: str, rule: str
) -> None:
    response = await client.post(f"{API}/codes", json={"mobile": mobile, "purpose": "register"})
    assert response.status_code == 422
    assert _rule(response) == ("mobile", rule)


async def test_mobile_with_country_prefix_is_normalised(flows: Flows) -> None:
    code = await flows.send_code("+86 138-0013-8000")
    assert code == await flows.latest_code(ZHANG.mobile)


async def test_wrong_malformed_and_unsent_codes(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    code = await flows.send_code(ZHANG.mobile)
    wrong = "000000" if code != "000000" else "111111"
    response = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": wrong})
    assert response.status_code == 422 and _rule(response) == ("code", "incorrect")
    response = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": "12ab"})
    assert response.status_code == 422 and _rule(response) == ("code", "format")
    response = await client.post(f"{API}/registrations", json={"mobile": LI.mobile, "code": code})
    assert response.status_code == 422 and _rule(response) == ("code", "not_issued")


async def test_a_code_is_used_once(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    code = await flows.send_code(ZHANG.mobile)
    first = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": code})
    assert first.status_code == 201
    again = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": code})
    assert again.status_code == 422 and _rule(again) == ("code", "already_used")


async def test_expired_code_is_refused_clearly(
    client: AsyncTestClient[Litestar], flows: Flows, redis_client: aioredis.Redis
) -> None:
    code = await flows.send_code(ZHANG.mobile)
    # Age the code as time would: its expiry field moves into the past (no sleeping in tests).
    (key,) = [k async for k in redis_client.scan_iter("identity:code:register:*")]
    await redis_client.hset(key, "exp", 0)
    response = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": code})
    assert response.status_code == 422 and _rule(response) == ("code", "expired")


async def test_concurrent_submissions_of_one_code_succeed_once(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    code = await flows.send_code(ZHANG.mobile)
    body = {"mobile": ZHANG.mobile, "code": code}
    responses = await asyncio.gather(*(client.post(f"{API}/registrations", json=body) for _ in range(20)))
    statuses = sorted(r.status_code for r in responses)
    # One wins; replays fail as "already used" and count as failed attempts, so after five the
    # mobile is locked out (429) for the rest.
    assert statuses == [201] + [422] * 5 + [429] * 14
    assert {_rule(r) for r in responses if r.status_code == 422} == {("code", "already_used")}


async def test_duplicate_registration_is_409(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    await flows.register(ZHANG.mobile)
    code = await flows.send_code(ZHANG.mobile)
    response = await client.post(f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": code})
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/duplicate-registration"


async def test_optional_password_follows_the_policy(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    code = await flows.send_code(ZHANG.mobile)
    response = await client.post(
        f"{API}/registrations", json={"mobile": ZHANG.mobile, "code": code, "password": "short"}
    )
    assert response.status_code == 422 and _rule(response) == ("password", "min_length")
    session = await flows.register(LI.mobile, password="correct horse battery")
    me = (await client.get(f"{API}/me", headers=bearer(session["token"]))).json()
    assert me["has_password"] is True


async def test_unknown_fields_are_refused(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        f"{API}/codes", json={"mobile": ZHANG.mobile, "purpose": "register", "admin": True}
    )
    assert response.status_code == 422


async def test_sending_is_limited_per_mobile(client: AsyncTestClient[Litestar]) -> None:
    body = {"mobile": ZHANG.mobile, "purpose": "register"}
    statuses = [(await client.post(f"{API}/codes", json=body)).status_code for _ in range(7)]
    assert statuses == [202] * 5 + [429] * 2
    refused = await client.post(f"{API}/codes", json=body)
    assert int(refused.headers["retry-after"]) > 0


async def test_sign_in_code_to_unknown_number_sends_nothing_but_answers_alike(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.post(f"{API}/codes", json={"mobile": LI.mobile, "purpose": "login"})
    assert response.status_code == 202
    assert (await client.get(f"{API}/dev/sms", params={"mobile": LI.mobile})).json() == []
