"""TOTP enrolment to L3, step-up of an L2 session, replay refusal, and the level guards."""

from __future__ import annotations

import time
import uuid

from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.testing import AsyncTestClient

from identity.auth import Principal, requires_loa
from identity.totp import totp
from tests.identity.conftest import API, LI, ZHANG, Flows, bearer


@get("/probe/l3", guards=[requires_loa(3)], operation_id="ProbeL3")
async def probe_l3(principal: NamedDependency[Principal]) -> dict[str, str]:
    return {"account_id": str(principal.account_id)}


async def test_enrol_totp_and_step_up_later(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    app.register(probe_l3)
    l2 = await flows.verified(ZHANG)
    refused = await client.get("/probe/l3", headers=bearer(l2["token"]))
    assert refused.status_code == 401
    assert refused.json()["type"] == "/problems/insufficient-assurance"
    assert 'acr_values="loa3"' in refused.headers["www-authenticate"]

    secret, l3 = await flows.enable_totp(l2["token"])
    assert l3["loa"] == 3
    assert (await client.get("/probe/l3", headers=bearer(l3["token"]))).status_code == 200
    assert (await client.get(f"{API}/me", headers=bearer(l3["token"]))).json()["level"] == 3

    # A new sign-in is L2 (a code alone is one factor); a TOTP code steps the same session up.
    again = await flows.login_code(ZHANG.mobile)
    assert again["loa"] == 2
    next_code = totp(secret, time.time() + 30)  # the next time step (one step of drift is accepted)
    step_up = await client.post(
        f"{API}/sessions/current/step-up", json={"code": next_code}, headers=bearer(again["token"])
    )
    assert step_up.status_code == 200, step_up.text
    upgraded = step_up.json()
    assert upgraded["loa"] == 3 and upgraded["session_id"] == again["session_id"]
    assert (await client.get(f"{API}/me", headers=bearer(again["token"]))).status_code == 401  # rotated
    whoami = (await client.get(f"{API}/session", headers=bearer(upgraded["token"]))).json()
    assert whoami["loa"] == 3 and set(whoami["amr"]) == {"sms", "otp"}

    # The same code again, in another session: a TOTP time step is accepted once.
    third = await flows.login_code(ZHANG.mobile)
    replay = await client.post(
        f"{API}/sessions/current/step-up", json={"code": next_code}, headers=bearer(third["token"])
    )
    assert replay.status_code == 422
    assert replay.json()["errors"][0]["rule"] == "already_used"


async def test_wrong_totp_codes_count_towards_lockout(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    l2 = await flows.verified(ZHANG)
    secret, _ = await flows.enable_totp(l2["token"])
    session = await flows.login_code(ZHANG.mobile)
    right = totp(secret, time.time() + 30)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    statuses = [
        (
            await client.post(
                f"{API}/sessions/current/step-up", json={"code": wrong}, headers=bearer(session["token"])
            )
        ).status_code
        for _ in range(6)
    ]
    assert statuses == [422] * 5 + [429]


async def test_totp_needs_a_verified_account(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    l1 = await flows.register(LI.mobile)
    response = await client.post(f"{API}/me/totp", headers=bearer(l1["token"]))
    assert response.status_code == 401  # requires L2: a step-up challenge
    step_up = await client.post(
        f"{API}/sessions/current/step-up", json={"code": "123456"}, headers=bearer(l1["token"])
    )
    assert step_up.status_code == 409  # no second factor to step up with


async def test_unknown_and_malformed_tokens_are_401(client: AsyncTestClient[Litestar]) -> None:
    for header in ({}, {"Authorization": "Basic abc"}, bearer(str(uuid.uuid4())), bearer("x" * 600)):
        response = await client.get(f"{API}/me", headers=header)
        assert response.status_code == 401
        assert response.json()["type"] == "/problems/unauthorized"
