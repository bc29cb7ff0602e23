"""A change of credentials (password, mobile number, second factor) needs fresh proof where it can
be used to take the account over, ends every other session, and is audited."""

from __future__ import annotations

import base64
import time
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.totp import totp
from tests.identity.conftest import API, ZHANG, Flows, bearer

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a completely new passphrase"
Client = AsyncTestClient[Litestar]


async def _me(client: Client, session: dict[str, Any]) -> int:
    return (await client.get(f"{API}/me", headers=bearer(session["token"]))).status_code


async def _details(db: Any, action: str) -> list[Any]:
    rows = await db.fetch(
        "SELECT outcome, details::text AS d FROM identity.audit_events"
        " WHERE action = $1 ORDER BY occurred_at",
        action,
    )
    return [(r["outcome"], r["d"]) for r in rows]


async def test_a_password_change_ends_every_other_session(client: Client, flows: Flows, db: Any) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    login = {"mobile": ZHANG.mobile, "password": PASSWORD}
    other = (await client.post(f"{API}/sessions/password", json=login)).json()  # e.g. a stolen phone
    owner = (await client.post(f"{API}/sessions/password", json=login)).json()
    changed = await client.put(
        f"{API}/me/password",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(owner["token"]),
    )
    assert changed.status_code == 204
    assert await _me(client, other) == 401  # signed in with the old password: ended
    assert await _me(client, owner) == 200  # the session that changed it stays
    ended = await db.fetchval(
        "SELECT count(*) FROM identity.sessions"
        " WHERE account_id = $1 AND revoked_reason = 'password changed'",
        owner["account_id"],
    )
    assert ended == 2  # the registration's session too
    assert await _details(db, "identity.password.set") == [("success", '{"sessions_ended": 2}')]


async def test_replacing_the_second_factor_ends_every_other_session(client: Client, flows: Flows) -> None:
    l2 = await flows.verified(ZHANG)
    secret, l3 = await flows.enable_totp(l2["token"])
    other = await flows.login_code(ZHANG.mobile)
    # The first enrolment adds a factor; the sessions of before keep their level.
    assert await _me(client, other) == 200
    # Replacing it (from an L3 session) ends the others: one may hold the old authenticator.
    begun = await client.post(f"{API}/me/totp", headers=bearer(l3["token"]))
    assert begun.status_code == 200, begun.text
    encoded = begun.json()["secret"]
    new_secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
    assert new_secret != secret
    confirmed = await client.post(
        f"{API}/me/totp/confirm", json={"code": totp(new_secret, time.time())}, headers=bearer(l3["token"])
    )
    assert confirmed.status_code == 200, confirmed.text
    assert await _me(client, other) == 401
    assert await _me(client, confirmed.json()) == 200
