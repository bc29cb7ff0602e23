"""The operators' administration API: search through the blind index, freeze, sessions, audit trail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from identity.admin.operators import create_operator
from identity.audit import seal_all
from identity.passwords import PasswordHasher
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, ZHANG, Flows, bearer

ADMIN = f"{API}/admin"
OperatorFactory = Callable[[list[str]], Awaitable[str]]


@pytest.fixture
def operator(db: Any, client: AsyncTestClient[Litestar], identity_settings: Settings) -> OperatorFactory:
    """Create an operator with ``roles`` and return a bearer token of theirs."""
    hasher = PasswordHasher(identity_settings.identity)

    async def make(roles: list[str]) -> str:
        username = "op-" + "-".join(sorted(roles)).replace("_", "")
        await create_operator(
            db, hasher, username=username, display_name=username, roles=roles, password="operator pass 1"
        )
        response = await client.post(
            f"{API}/operator-sessions", json={"username": username, "password": "operator pass 1"}
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    return make


async def test_search_by_mobile_and_id_number_is_masked(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory
) -> None:
    person = await flows.verified(ZHANG)
    token = await operator(["support"])
    by_mobile = (
        await client.get(f"{ADMIN}/accounts", params={"mobile": ZHANG.mobile}, headers=bearer(token))
    ).json()
    by_id = (
        await client.get(f"{ADMIN}/accounts", params={"id_number": ZHANG.id_number}, headers=bearer(token))
    ).json()
    assert by_mobile == by_id
    (found,) = by_mobile
    assert found["account_id"] == person["account_id"]
    assert found["mobile"] == "138****8000" and found["id_number"] == "440***********123X"
    assert ZHANG.id_number not in str(by_id) and ZHANG.mobile not in str(by_id)
    none = await client.get(f"{ADMIN}/accounts", params={"mobile": LI.mobile}, headers=bearer(token))
    assert none.json() == []
    both = await client.get(f"{ADMIN}/accounts", headers=bearer(token))
    assert both.status_code == 422


async def test_search_organisations(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory
) -> None:
    boss = await flows.verified(ZHANG)
    company = ENTERPRISES[0]
    created = await client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(boss["token"]),
    )
    assert created.status_code == 201
    token = await operator(["auditor"])
    by_code = await client.get(
        f"{ADMIN}/organisations", params={"credit_code": company.credit_code}, headers=bearer(token)
    )
    by_rep = await client.get(
        f"{ADMIN}/organisations", params={"id_number": ZHANG.id_number}, headers=bearer(token)
    )
    assert by_code.json() == by_rep.json()
    assert by_code.json()[0]["agents"] == 1


async def test_freeze_ends_sessions_and_refuses_sign_in_until_unfrozen(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory
) -> None:
    person = await flows.verified(ZHANG)
    support = await operator(["support"])
    frozen = await client.post(
        f"{ADMIN}/accounts/{person['account_id']}/freeze",
        json={"reason": "reported stolen phone"},
        headers=bearer(support),
    )
    assert frozen.status_code == 200 and frozen.json()["status"] == "frozen"
    assert (await client.get(f"{API}/me", headers=bearer(person["token"]))).status_code == 401
    code = await flows.send_code(ZHANG.mobile, "login")
    refused = await client.post(f"{API}/sessions/code", json={"mobile": ZHANG.mobile, "code": code})
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/account-unavailable"
    # Support may freeze but not unfreeze; a security admin may.
    unfreeze = f"{ADMIN}/accounts/{person['account_id']}/unfreeze"
    assert (
        await client.post(unfreeze, json={"reason": "checked"}, headers=bearer(support))
    ).status_code == 403
    security = await operator(["security_admin"])
    assert (
        await client.post(unfreeze, json={"reason": "identity checked"}, headers=bearer(security))
    ).status_code == 200
    await flows.login_code(ZHANG.mobile)

    sessions = (
        await client.get(f"{ADMIN}/accounts/{person['account_id']}/sessions", headers=bearer(security))
    ).json()
    assert [s["live"] for s in sessions][:1] == [True]
    assert any(s["revoked_reason"] == "frozen" for s in sessions)
    live = sessions[0]["id"]
    assert (await client.delete(f"{ADMIN}/sessions/{live}", headers=bearer(security))).status_code == 204


async def test_roles_and_kinds_are_enforced(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory
) -> None:
    person = await flows.verified(ZHANG)
    auditor = await operator(["auditor"])
    freeze = f"{ADMIN}/accounts/{person['account_id']}/freeze"
    assert (await client.post(freeze, json={"reason": "because"}, headers=bearer(auditor))).status_code == 403
    assert (
        await client.get(
            f"{ADMIN}/accounts", params={"mobile": ZHANG.mobile}, headers=bearer(person["token"])
        )
    ).status_code == 403
    assert (
        await client.get(f"{API}/me", headers=bearer(auditor))
    ).status_code == 403  # operators are not citizens
    assert (
        await client.get(f"{ADMIN}/audit/{person['account_id']}", headers=bearer(auditor))
    ).status_code == 200


async def test_every_operator_action_is_audited(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory, db: Any
) -> None:
    person = await flows.verified(ZHANG)
    token = await operator(["security_admin"])
    headers = bearer(token)
    await client.get(f"{ADMIN}/accounts", params={"mobile": ZHANG.mobile}, headers=headers)
    await client.get(f"{ADMIN}/accounts/{person['account_id']}", headers=headers)
    await client.post(
        f"{ADMIN}/accounts/{person['account_id']}/freeze", json={"reason": "test"}, headers=headers
    )
    await client.post(
        f"{ADMIN}/accounts/{person['account_id']}/unfreeze", json={"reason": "test"}, headers=headers
    )
    await client.get(f"{ADMIN}/accounts/{person['account_id']}/sessions", headers=headers)
    trail = (await client.get(f"{ADMIN}/audit/{person['account_id']}", headers=headers)).json()
    assert {"identity.person.register", "identity.person.verify", "identity.admin.account.freeze"} <= {
        e["action"] for e in trail
    }
    report = (await client.post(f"{ADMIN}/audit/verification", headers=headers)).json()
    assert report["ok"] is True
    await seal_all(db)
    actions = [
        r["action"]
        for r in await db.fetch(
            "SELECT action FROM identity.audit_log WHERE actor_kind = 'operator' ORDER BY seq"
        )
    ]
    assert actions == [
        "identity.operator.session.create",
        "identity.admin.account.search",
        "identity.admin.account.view",
        "identity.admin.account.freeze",
        "identity.admin.account.unfreeze",
        "identity.admin.sessions.view",
        "identity.admin.audit.view",
        "identity.admin.audit.verify",
    ]


async def test_operator_sign_in_is_rate_limited(
    client: AsyncTestClient[Litestar], operator: OperatorFactory
) -> None:
    await operator(["support"])
    statuses = [
        (
            await client.post(
                f"{API}/operator-sessions", json={"username": "op-support", "password": f"x{i}"}
            )
        ).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]


async def test_a_search_shows_in_the_trail_of_each_person_and_organisation_found(
    client: AsyncTestClient[Litestar], flows: Flows, operator: OperatorFactory, db: Any
) -> None:
    person = await flows.verified(ZHANG)
    company = ENTERPRISES[0]
    org = await client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(person["token"]),
    )
    org_id = org.json()["id"]
    headers = bearer(await operator(["auditor"]))
    found = await client.get(f"{ADMIN}/accounts", params={"id_number": ZHANG.id_number}, headers=headers)
    assert [a["account_id"] for a in found.json()] == [person["account_id"]]
    by_agent = await client.get(f"{ADMIN}/organisations", params={"mobile": ZHANG.mobile}, headers=headers)
    assert [o["id"] for o in by_agent.json()] == [org_id]
    nobody = await client.get(f"{ADMIN}/accounts", params={"mobile": LI.mobile}, headers=headers)
    assert nobody.json() == []

    # The person's trail (what an auditor reads, and what their own export holds) shows both lookups.
    trail = (await client.get(f"{ADMIN}/audit/{person['account_id']}", headers=headers)).json()
    searches = {e["action"] for e in trail if e["target_id"] == person["account_id"]}
    assert {"identity.admin.account.search", "identity.admin.organisation.search"} <= searches
    export = (await client.get(f"{API}/me/export", headers=bearer(person["token"]))).json()
    assert {"identity.admin.account.search", "identity.admin.organisation.search"} <= {
        e["action"] for e in export["audit_entries"]
    }
    org_trail = (await client.get(f"{ADMIN}/audit/{org_id}", headers=headers)).json()
    assert "identity.admin.organisation.search" in {e["action"] for e in org_trail}

    await seal_all(db)
    rows = await db.fetch(
        "SELECT action, target_kind, target_id, details->>'search' AS search, details->>'by' AS by,"
        " (details->>'found')::int AS found FROM identity.audit_log"
        " WHERE action LIKE 'identity.admin.%.search' ORDER BY seq"
    )
    events = [(r["action"], r["target_kind"], r["target_id"]) for r in rows]
    assert events == [
        ("identity.admin.account.search", "account", person["account_id"]),
        ("identity.admin.organisation.search", "account", person["account_id"]),
        ("identity.admin.organisation.search", "organisation", org_id),
        ("identity.admin.account.search", None, None),  # found nothing: one event, no target
    ]
    assert rows[1]["search"] == rows[2]["search"] != rows[0]["search"]  # one search, two targets
    assert rows[0]["by"] == "id_number" and rows[3]["found"] == 0
