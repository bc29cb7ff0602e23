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
NEW_MOBILE = "13312345678"
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


async def _change_mobile(client: Client, session: dict[str, Any], new_code: str, **proof: str) -> Any:
    """PUT /me/mobile: to NEW_MOBILE with its ``new_code`` and the ``proof`` of the current owner."""
    return await client.put(
        f"{API}/me/mobile",
        json={"mobile": NEW_MOBILE, "code": new_code, **proof},
        headers=bearer(session["token"]),
    )


async def _ask_for_codes(client: Client, flows: Flows, session: dict[str, Any]) -> tuple[str, str]:
    """The codes sent to the new number and to the current one."""
    sent = await client.post(
        f"{API}/me/mobile/code", json={"mobile": NEW_MOBILE}, headers=bearer(session["token"])
    )
    assert sent.status_code == 202, sent.text
    return await flows.latest_code(NEW_MOBILE), await flows.latest_code(ZHANG.mobile)


async def test_a_stolen_session_cannot_move_the_account_to_another_number(
    client: Client, flows: Flows, db: Any
) -> None:
    stolen = await flows.verified(ZHANG, password=PASSWORD)
    new_code, _ = await _ask_for_codes(client, flows, stolen)
    # The new number's code alone: refused, nothing changes.
    alone = await _change_mobile(client, stolen, new_code)
    assert alone.status_code == 422, alone.text
    assert alone.json()["errors"][0] == {
        "field": "current_mobile_code",
        "rule": "required",
        "message": "give the code sent to the current number (or the current password, if one is set)",
    }
    guessed = await _change_mobile(client, stolen, new_code, current_password="a guessed password")
    assert guessed.status_code == 401
    # The owner still signs in with their number; the attacker's number signs in nowhere.
    owner = await client.post(f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD})
    assert owner.status_code == 201
    await flows.send_code(NEW_MOBILE, "register")  # the number is still free
    # The current number was told that a change was asked for (its code is in that message).
    told = (await client.get(f"{API}/dev/sms", params={"mobile": ZHANG.mobile, "limit": 5})).json()
    assert any("更换" in m["text"] for m in told)
    assert [o for o, _ in await _details(db, "identity.mobile.change")] == ["failure", "failure"]


async def test_the_owner_changes_the_number_with_the_current_numbers_code(
    client: Client, flows: Flows, db: Any
) -> None:
    owner = await flows.verified(ZHANG)
    elsewhere = await flows.login_code(ZHANG.mobile)
    new_code, current_code = await _ask_for_codes(client, flows, owner)
    changed = await _change_mobile(client, owner, new_code, current_mobile_code=current_code)
    assert changed.status_code == 200, changed.text
    assert changed.json()["mobile"] == "133****5678"
    assert await _me(client, elsewhere) == 401  # every other session ended
    assert await _me(client, owner) == 200
    # The old number is told of the change, with the new number masked.
    notice = (await client.get(f"{API}/dev/sms", params={"mobile": ZHANG.mobile, "limit": 1})).json()[0]
    assert "133****5678" in notice["text"] and NEW_MOBILE not in notice["text"]
    assert (await flows.login_code(NEW_MOBILE))["loa"] == 2
    assert await _details(db, "identity.mobile.change") == [
        ("success", '{"proofs": ["sms_current"], "sessions_ended": 1}')
    ]


async def test_the_owner_changes_the_number_with_the_password(client: Client, flows: Flows) -> None:
    owner = await flows.verified(ZHANG, password=PASSWORD)
    new_code, _ = await _ask_for_codes(client, flows, owner)
    changed = await _change_mobile(client, owner, new_code, current_password=PASSWORD)
    assert changed.status_code == 200, changed.text


async def test_with_a_second_factor_the_change_also_needs_its_code(client: Client, flows: Flows) -> None:
    l2 = await flows.verified(ZHANG, password=PASSWORD)
    secret, l3 = await flows.enable_totp(l2["token"])
    new_code, current_code = await _ask_for_codes(client, flows, l3)
    body = {"mobile": NEW_MOBILE, "code": new_code, "current_mobile_code": current_code}
    missing = await client.put(f"{API}/me/mobile", json=body, headers=bearer(l3["token"]))
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "totp_code"
    # The codes were not spent by the refusal: with the TOTP code the same request succeeds.
    body["totp_code"] = totp(secret, time.time() + 30)  # the next time step: enrolment used this one
    changed = await client.put(f"{API}/me/mobile", json=body, headers=bearer(l3["token"]))
    assert changed.status_code == 200, changed.text
