"""Session fixation: a session id known before the sign-in (planted in the browser by whoever
visited first) must grant nothing after it, and the signed-in id must grant nothing after the
sign-out. Both areas move the session to a new id at sign-in and at sign-out."""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.web.sessions import CONSOLE_COOKIE, WEB_COOKIE
from tests.web.conftest import csrf_of, demo_operator, sign_in

Client = AsyncTestClient[Litestar]


def _stored(session_id: str) -> str:
    return "web:s:" + hashlib.sha256(session_id.encode()).hexdigest()


async def test_operator_sign_in_and_out_change_the_console_session_id(
    client: Client, operator_password: str, redis_client: aioredis.Redis
) -> None:
    page = await client.get("/console/login")
    planted = client.cookies.get(CONSOLE_COOKIE)
    assert planted and await redis_client.exists(_stored(planted))
    signed_in = await client.post(
        "/console/login",
        data={
            "csrf": csrf_of(page.text),
            "username": demo_operator(),
            "password": operator_password,
            "next": "/console/",
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
    signed_in_id = client.cookies.get(CONSOLE_COOKIE)
    assert signed_in_id and signed_in_id != planted
    assert not await redis_client.exists(_stored(planted))
    home = await client.get("/console/")
    assert home.status_code == 200 and demo_operator() in home.text

    # Whoever planted the old id holds nothing: a fresh anonymous session, sent to the login.
    attacker = await client.get(
        "/console/", headers={"Cookie": f"{CONSOLE_COOKIE}={planted}"}, follow_redirects=False
    )
    assert attacker.status_code == 303 and attacker.headers["location"].startswith("/console/login")
    assert planted not in attacker.headers.get("set-cookie", "")

    out = await client.post(
        "/console/logout",
        data={"csrf": csrf_of(home.text)},
        headers={"Cookie": f"{CONSOLE_COOKIE}={signed_in_id}"},
        follow_redirects=False,
    )
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert f"{CONSOLE_COOKIE}={signed_in_id}" not in out.headers["set-cookie"]
    assert not await redis_client.exists(_stored(signed_in_id))
    replayed = await client.get(
        "/console/", headers={"Cookie": f"{CONSOLE_COOKIE}={signed_in_id}"}, follow_redirects=False
    )
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/console/login")


async def test_citizen_sign_in_and_out_change_the_web_session_id(
    client: Client, citizen_password: str, redis_client: aioredis.Redis
) -> None:
    await client.get("/web/")
    planted = client.cookies.get(WEB_COOKIE)
    assert planted and await redis_client.exists(_stored(planted))
    landed = await sign_in(client, citizen_password)
    assert landed.url.path == "/web/" and "/web/logout" in landed.text
    signed_in_id = client.cookies.get(WEB_COOKIE)
    assert signed_in_id and signed_in_id != planted
    assert not await redis_client.exists(_stored(planted))

    attacker = await client.get(
        "/web/", headers={"Cookie": f"{WEB_COOKIE}={planted}"}, follow_redirects=False
    )
    assert attacker.status_code == 200 and "/web/logout" not in attacker.text
    assert 'id="sign-in"' in attacker.text

    out = await client.post(
        "/web/logout",
        data={"csrf": csrf_of(landed.text)},
        headers={"Cookie": f"{WEB_COOKIE}={signed_in_id}"},
        follow_redirects=False,
    )
    assert out.status_code == 303
    assert f"{WEB_COOKIE}={signed_in_id}" not in out.headers["set-cookie"]
    assert not await redis_client.exists(_stored(signed_in_id))
    replayed = await client.get(
        "/web/", headers={"Cookie": f"{WEB_COOKIE}={signed_in_id}"}, follow_redirects=False
    )
    assert replayed.status_code == 200 and "/web/logout" not in replayed.text
