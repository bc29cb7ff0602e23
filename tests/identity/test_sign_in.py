"""Sign-in by code or password, and lockout that holds under parallel attempts."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from tests.identity.conftest import API, LI, WANG, ZHANG, Flows, bearer

PASSWORD = "correct horse battery staple"


async def test_code_sign_in_reaches_the_verified_level(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.verified(ZHANG)
    session = await flows.login_code(ZHANG.mobile)
    assert session["loa"] == 2
    whoami = (await client.get(f"{API}/session", headers=bearer(session["token"]))).json()
    assert whoami["amr"] == ["sms"]


async def test_password_sign_in(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    ok = await client.post(f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD})
    assert ok.status_code == 201 and ok.json()["loa"] == 1
    bad = await client.post(
        f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": "nope nope"}
    )
    assert bad.status_code == 401 and bad.json()["type"] == "/problems/invalid-credentials"
    unknown = await client.post(f"{API}/sessions/password", json={"mobile": LI.mobile, "password": PASSWORD})
    assert unknown.status_code == 401  # the same answer as a wrong password


async def test_sign_out_ends_the_session(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    session = await flows.register(ZHANG.mobile)
    assert (
        await client.delete(f"{API}/sessions/current", headers=bearer(session["token"]))
    ).status_code == 204
    assert (await client.get(f"{API}/me", headers=bearer(session["token"]))).status_code == 401


async def test_parallel_wrong_codes_evaluate_exactly_five(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile)
    code = await flows.send_code(ZHANG.mobile, "login")
    wrong = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 51)]
    responses = await asyncio.gather(
        *(client.post(f"{API}/sessions/code", json={"mobile": ZHANG.mobile, "code": c}) for c in wrong)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [422] * 5 + [429] * 45
    assert all(int(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 429)
    # Locked out: even the right code is refused now, and it stays unused.
    right = await client.post(f"{API}/sessions/code", json={"mobile": ZHANG.mobile, "code": code})
    assert right.status_code == 429


async def test_parallel_wrong_passwords_evaluate_exactly_five(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": f"guess {i:04d}"}
            )
            for i in range(50)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 5 + [429] * 45
    right = await client.post(f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD})
    assert right.status_code == 429


async def test_a_right_password_does_not_use_up_attempts(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    for _ in range(8):
        ok = await client.post(
            f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD}
        )
        assert ok.status_code == 201


@pytest.fixture
def identity_settings(settings_with_upstreams: Settings) -> Settings:
    """A low per-address limit, to see it without hundreds of requests."""
    return settings_with_upstreams.replace(
        identity=msgspec.structs.replace(settings_with_upstreams.identity, address_failure_limit=7)
    )


async def test_failures_are_limited_per_client_address_across_accounts(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    for person in (ZHANG, LI, WANG):
        await flows.register(person.mobile, password=PASSWORD)
    statuses = []
    for person in (ZHANG, LI, WANG):
        for i in range(3):
            body = {"mobile": person.mobile, "password": f"wrong {i:04d}"}
            statuses.append((await client.post(f"{API}/sessions/password", json=body)).status_code)
    assert statuses == [401] * 7 + [429] * 2
