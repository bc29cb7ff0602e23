"""Personal data: nothing in clear at rest, masked in answers; export, change of mobile, deactivation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.admin.operators import create_operator
from identity.passwords import PasswordHasher
from identity.sms import DEV_SMS_KEY
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, SUN, WANG, ZHANG, Flows, bearer


async def _everything_in_identity_as_text(db: Any) -> str:
    """Like a dump: every column of every table in the identity schema, cast to text."""
    tables = await db.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'identity' AND table_type = 'BASE TABLE'"
    )
    assert {"accounts", "agents", "audit_log", "organisations", "sessions", "operators"} <= {
        t["table_name"] for t in tables
    }
    parts = []
    for table in tables:
        rows = await db.fetch(f'SELECT t::text AS row FROM identity."{table["table_name"]}" t')
        parts += [r["row"] for r in rows]
    return "\n".join(parts)


async def test_no_plaintext_id_number_or_mobile_at_rest(
    client: AsyncTestClient[Litestar], flows: Flows, db: Any, redis_client: aioredis.Redis
) -> None:
    l2 = await flows.verified(ZHANG, password="a long enough passphrase")
    _, boss = await flows.enable_totp(l2["token"])
    company = ENTERPRISES[0]
    org = await client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(boss["token"]),
    )
    await flows.verified(LI)
    await client.post(
        f"{API}/organisations/{org.json()['id']}/agents",
        json={"id_number": LI.id_number, "name": LI.name, "roles": ["filings"], "ends_on": "2099-01-01"},
        headers=bearer(boss["token"]),
    )
    await client.get(f"{API}/me/export", headers=bearer(boss["token"]))
    dump = await _everything_in_identity_as_text(db)
    assert len(dump) > 1000
    for person in (ZHANG, LI):
        for secret in (
            person.id_number,
            person.id_number[:17],
            person.mobile,
            person.id_number[6:14] + person.id_number[14:],
        ):
            assert secret not in dump
        assert person.name not in dump
    # identity's Redis keys too, apart from the development SMS gateway's log (made to show them).
    # (integrations' enterprise cache keeps the registry's answer, representative's ID included.)
    keys = [k async for k in redis_client.scan_iter("identity:*") if k != DEV_SMS_KEY.encode()]
    assert any(k.startswith(b"identity:session:") for k in keys)
    for key in keys:
        kind = await redis_client.type(key)
        if kind == b"string":
            values = [await redis_client.get(key)]
        elif kind == b"hash":
            values = list((await redis_client.hgetall(key)).values())
        else:
            continue
        for value in values:
            assert value is not None
            for person in (ZHANG, LI):
                assert person.mobile.encode() not in value and person.id_number.encode() not in value


async def test_export_holds_everything_about_the_person(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    session = await flows.verified(ZHANG)
    response = await client.get(f"{API}/me/export", headers=bearer(session["token"]))
    assert response.status_code == 200
    data = response.json()
    account = data["account"]
    assert account["id_number"] == ZHANG.id_number and account["mobile"] == ZHANG.mobile
    assert account["name"] == ZHANG.name and account["registry_attributes"]["birth_date"] == "1990-03-07"
    assert len(data["sessions"]) == 1
    assert {"identity.person.register", "identity.person.verify"} <= {
        e["action"] for e in data["audit_entries"]
    }
    assert "password_hash" not in str(data) and "totp_secret" not in str(data)


async def test_export_holds_no_one_elses_data(
    client: AsyncTestClient[Litestar], flows: Flows, db: Any, identity_settings: Any
) -> None:
    """An operator who looked at the account appears by role only: not their account id, nor
    their workstation's address, nor the request id; the person's own entries keep their address."""
    person = await flows.verified(SUN)
    hasher = PasswordHasher(identity_settings.identity)
    await create_operator(
        db, hasher, username="op-support", display_name="op", roles=["support"], password="operator pass 1"
    )
    signed_in = await client.post(
        f"{API}/operator-sessions", json={"username": "op-support", "password": "operator pass 1"}
    )
    operator = signed_in.json()
    viewed = await client.get(
        f"{API}/admin/accounts/{person['account_id']}", headers=bearer(operator["token"])
    )
    assert viewed.status_code == 200
    export = (await client.get(f"{API}/me/export", headers=bearer(person["token"]))).json()
    entries = export["audit_entries"]
    by_operator = [e for e in entries if e["actor_kind"] == "operator"]
    assert by_operator
    for entry in by_operator:
        assert entry["actor_id"] is None and entry["client_address"] is None
    assert operator["account_id"] not in str(export)
    assert all("request_id" not in e and "hash" not in e for e in entries)
    own = [e for e in entries if e["action"] == "identity.person.verify"]
    assert own[0]["actor_id"] == person["account_id"] and own[0]["client_address"]


async def test_change_of_mobile_needs_a_code_sent_to_the_new_number(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    session = await flows.verified(ZHANG)
    headers = bearer(session["token"])
    new = "13811112222"
    sent = await client.post(f"{API}/me/mobile/code", json={"mobile": new}, headers=headers)
    assert sent.status_code == 202 and sent.json()["mobile"] == "138****2222"
    code, current = await flows.latest_code(new), await flows.latest_code(ZHANG.mobile)
    wrong = await client.put(
        f"{API}/me/mobile",
        json={"mobile": new, "code": f"{(int(code) + 1) % 10**6:06d}", "current_mobile_code": current},
        headers=headers,
    )
    assert wrong.status_code == 422
    # The current number's code was right, and spent: a new pair is needed.
    await client.post(f"{API}/me/mobile/code", json={"mobile": new}, headers=headers)
    code, current = await flows.latest_code(new), await flows.latest_code(ZHANG.mobile)
    changed = await client.put(
        f"{API}/me/mobile",
        json={"mobile": new, "code": code, "current_mobile_code": current},
        headers=headers,
    )
    assert changed.status_code == 200 and changed.json()["mobile"] == "138****2222"
    # The old number no longer signs in (no code is sent to it); the new one does.
    before = len((await client.get(f"{API}/dev/sms", params={"mobile": ZHANG.mobile, "limit": 50})).json())
    await client.post(f"{API}/codes", json={"mobile": ZHANG.mobile, "purpose": "login"})
    after = len((await client.get(f"{API}/dev/sms", params={"mobile": ZHANG.mobile, "limit": 50})).json())
    assert after == before
    await flows.login_code(new)
    # Another account cannot take a number in use.
    other = await flows.register(WANG.mobile)
    await client.post(f"{API}/me/mobile/code", json={"mobile": new}, headers=bearer(other["token"]))
    code, current = await flows.latest_code(new), await flows.latest_code(WANG.mobile)
    taken = await client.put(
        f"{API}/me/mobile",
        json={"mobile": new, "code": code, "current_mobile_code": current},
        headers=bearer(other["token"]),
    )
    assert taken.status_code == 409


async def test_deactivation_ends_sessions_and_frees_the_number(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    session = await flows.verified(LI)
    response = await client.post(f"{API}/me/deactivation", headers=bearer(session["token"]))
    assert response.status_code == 204
    assert (await client.get(f"{API}/me", headers=bearer(session["token"]))).status_code == 401
    again = await flows.register(LI.mobile)  # a new account may use the number and the ID again
    assert (await flows.verify(again["token"], LI))["loa"] == 2


async def test_legal_representative_cannot_deactivate_while_representing(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    boss = await flows.verified(ZHANG)
    company = ENTERPRISES[0]
    await client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(boss["token"]),
    )
    assert (await client.post(f"{API}/me/deactivation", headers=bearer(boss["token"]))).status_code == 409


async def test_set_password_requires_the_current_one(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    session = await flows.verified(ZHANG, password="first passphrase here")
    headers = bearer(session["token"])
    missing = await client.put(f"{API}/me/password", json={"password": "second passphrase"}, headers=headers)
    assert missing.status_code == 401
    ok = await client.put(
        f"{API}/me/password",
        json={"password": "second passphrase", "current_password": "first passphrase here"},
        headers=headers,
    )
    assert ok.status_code == 204
    signed_in = await client.post(
        f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": "second passphrase"}
    )
    assert signed_in.status_code == 201


async def test_timestamps_are_utc(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    session = await flows.register(ZHANG.mobile)
    expires = dt.datetime.fromisoformat(session["expires_at"].replace("Z", "+00:00"))
    assert expires.utcoffset() == dt.timedelta(0)
