"""Legal persons: the legal representative claims the organisation and invites agents, who accept
and then act for it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.testing import AsyncTestClient

from identity.audit import seal_all
from identity.auth import Principal, requires_org_role
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, SUN, ZHANG, ZHAO, Flows, bearer

COMPANY, INSTITUTE, REVOKED = ENTERPRISES
ENDS = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)).isoformat()


@get(
    "/probe/orgs/{organisation_id:str}/cards",
    guards=[requires_org_role("card_admin", path_param="organisation_id")],
    operation_id="ProbeOrgCards",
)
async def probe_cards(
    principal: NamedDependency[Principal], organisation_id: FromPath[str]
) -> dict[str, Any]:
    return {"acting_for": str(principal.acting_for), "by": str(principal.account_id), "org": organisation_id}


async def _register_company(client: AsyncTestClient[Litestar], token: str, enterprise: Any = COMPANY) -> Any:
    return await client.post(
        f"{API}/organisations",
        json={"credit_code": enterprise.credit_code, "name": enterprise.name, "kind": enterprise.kind},
        headers=bearer(token),
    )


async def _company_with_agent(
    client: AsyncTestClient[Litestar], flows: Flows
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    boss = await flows.verified(ZHANG)
    org = await _register_company(client, boss["token"])
    assert org.status_code == 201, org.text
    agent = await flows.verified(LI)
    appointed = await client.post(
        f"{API}/organisations/{org.json()['id']}/agents",
        json={"id_number": LI.id_number, "name": LI.name, "roles": ["card_admin"], "ends_on": ENDS},
        headers=bearer(boss["token"]),
    )
    assert appointed.status_code == 201, appointed.text
    accepted = await client.post(
        f"{API}/organisations/{org.json()['id']}/invitation/accept", headers=bearer(agent["token"])
    )
    assert accepted.status_code == 200, accepted.text
    return org.json()["id"], boss, agent, appointed.json()["id"]


async def test_representative_registers_and_agent_acts_for_the_company(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    app.register(probe_cards)
    org_id, boss, agent, _ = await _company_with_agent(client, flows)
    view = (await client.get(f"{API}/organisations/{org_id}", headers=bearer(boss["token"]))).json()
    assert view["credit_code"] == COMPANY.credit_code and view["legal_representative"] == "张*"

    # Acting for oneself, the organisation's routes are closed.
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 403
    switched = await flows.act_for(agent["token"], org_id)
    assert switched.status_code == 200, switched.text
    assert switched.json()["roles"] == ["card_admin"]
    whoami = (await client.get(f"{API}/session", headers=bearer(agent["token"]))).json()
    assert whoami["acting_for"] == org_id and whoami["org_roles"] == ["card_admin"]
    assert whoami["account_id"] == agent["account_id"]  # who acts: the person; for whom: the company
    ok = await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    assert ok.status_code == 200 and ok.json()["acting_for"] == org_id
    # And back to oneself.
    assert (await flows.act_for(agent["token"], None)).status_code == 200
    assert (await client.get(f"{API}/session", headers=bearer(agent["token"]))).json()["acting_for"] is None


async def test_no_role_means_403_always(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    app.register(probe_cards)
    org_id, _boss, _agent, _ = await _company_with_agent(client, flows)
    outsider = await flows.verified(SUN)
    headers = bearer(outsider["token"])
    assert (await flows.act_for(outsider["token"], org_id)).status_code == 403
    assert (await client.get(f"{API}/organisations/{org_id}", headers=headers)).status_code == 403
    assert (await client.get(f"{API}/organisations/{org_id}/agents", headers=headers)).status_code == 403
    assert (await client.get(f"/probe/orgs/{org_id}/cards", headers=headers)).status_code == 403
    nowhere = "00000000-0000-4000-8000-000000000000"
    assert (await flows.act_for(outsider["token"], nowhere)).status_code == 403
    assert (await client.get(f"{API}/organisations/{nowhere}", headers=headers)).status_code == 403


async def test_role_is_checked_and_acting_for_one_org_does_not_open_another(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    app.register(probe_cards)
    org_id, _boss, agent, _ = await _company_with_agent(client, flows)
    # LI is also the legal representative of the institute: roles in several organisations.
    institute = await _register_company(client, agent["token"], INSTITUTE)
    assert institute.status_code == 201, institute.text
    institute_id = institute.json()["id"]
    mine = (await client.get(f"{API}/organisations", headers=bearer(agent["token"]))).json()
    assert {m["organisation_id"] for m in mine} == {org_id, institute_id}
    assert (await flows.act_for(agent["token"], institute_id)).status_code == 200
    # Acting for the institute does not give access to the company's routes.
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 403


async def test_suspension_and_removal_end_the_acting_context(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    app.register(probe_cards)
    org_id, boss, agent, agent_id = await _company_with_agent(client, flows)
    assert (await flows.act_for(agent["token"], org_id)).status_code == 200
    suspended = await client.patch(
        f"{API}/organisations/{org_id}/agents/{agent_id}",
        json={"status": "suspended"},
        headers=bearer(boss["token"]),
    )
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 403
    assert (await flows.act_for(agent["token"], org_id)).status_code == 403
    reinstated = await client.patch(
        f"{API}/organisations/{org_id}/agents/{agent_id}",
        json={"status": "active", "roles": ["card_admin", "payments"]},
        headers=bearer(boss["token"]),
    )
    assert reinstated.json()["roles"] == ["card_admin", "payments"]
    assert (await flows.act_for(agent["token"], org_id)).json()["roles"] == ["card_admin", "payments"]
    removed = await client.delete(
        f"{API}/organisations/{org_id}/agents/{agent_id}", headers=bearer(boss["token"])
    )
    assert removed.status_code == 200 and removed.json()["status"] == "removed"
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 403
    assert (await flows.act_for(agent["token"], org_id)).status_code == 403


async def test_only_the_registry_representative_may_claim(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    li = await flows.verified(LI)
    response = await _register_company(client, li["token"])  # the company's representative is ZHANG
    assert response.status_code == 403
    l1 = await flows.register(ZHAO.mobile)
    response = await _register_company(client, l1["token"])
    assert response.status_code == 401  # L2 needed: a step-up challenge


async def test_registry_checks_and_duplicates(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    boss = await flows.verified(ZHANG)
    headers = bearer(boss["token"])

    async def post(**body: str) -> Any:
        data = {"credit_code": COMPANY.credit_code, "name": COMPANY.name, "kind": COMPANY.kind, **body}
        return await client.post(f"{API}/organisations", json=data, headers=headers)

    for code, rule in [
        (COMPANY.credit_code[:17] + "0", "check_character"),
        ("Z1440300MA5FXY012P", "charset"),
        ("B1440300MA5FXY012P", "authority"),
        ("9144030", "length"),
    ]:
        response = await post(credit_code=code)
        assert response.status_code == 422, code
        assert response.json()["errors"][0] == {
            "field": "credit_code",
            "rule": rule,
            "message": response.json()["errors"][0]["message"],
        }
    assert (await post(name="别的公司")).json()["errors"][0]["rule"] == "registry_mismatch"
    revoked = await post(credit_code=REVOKED.credit_code, name=REVOKED.name, kind=REVOKED.kind)
    assert revoked.json()["errors"][0]["rule"] == "registry_inactive"
    assert (await post()).status_code == 201
    assert (await post()).status_code == 409


async def test_appointment_rules(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    boss = await flows.verified(ZHANG)
    org_id = (await _register_company(client, boss["token"])).json()["id"]
    await flows.register(LI.mobile)  # LI is not verified yet
    url = f"{API}/organisations/{org_id}/agents"

    async def appoint(token: str, **body: Any) -> Any:
        data = {"id_number": LI.id_number, "name": LI.name, "roles": ["filings"], "ends_on": ENDS, **body}
        return await client.post(url, json=data, headers=bearer(token))

    unverified = await appoint(boss["token"])
    li = await flows.verify((await flows.login_code(LI.mobile))["token"], LI)
    assert (await appoint(boss["token"], roles=["root"])).json()["errors"][0]["rule"] == "unknown_role"
    assert (await appoint(boss["token"], ends_on="2000-01-01")).json()["errors"][0]["rule"] == "in_the_past"
    wrong_name = await appoint(boss["token"], name="李五")
    # No verified account and another name: one answer, so the form tells nothing about who holds one.
    assert unverified.status_code == wrong_name.status_code == 422
    assert unverified.json()["errors"] == wrong_name.json()["errors"]
    assert unverified.json()["detail"] == wrong_name.json()["detail"]
    assert wrong_name.json()["errors"][0]["rule"] == "no_matching_account"
    assert (await appoint(li["token"])).status_code == 403  # only the legal representative appoints
    assert (await appoint(boss["token"])).status_code == 201
    assert (await appoint(boss["token"])).status_code == 409
    agents = (await client.get(url, headers=bearer(boss["token"]))).json()
    assert sorted(a["is_legal_representative"] for a in agents) == [False, True]
    assert all("*" in a["id_number"] for a in agents)


async def test_an_invited_person_holds_no_role_until_they_accept(
    app: Litestar, client: AsyncTestClient[Litestar], flows: Flows, db: Any
) -> None:
    app.register(probe_cards)
    boss = await flows.verified(ZHANG)
    org_id = (await _register_company(client, boss["token"])).json()["id"]
    agent = await flows.verified(LI)
    invited = await client.post(
        f"{API}/organisations/{org_id}/agents",
        json={"id_number": LI.id_number, "name": LI.name, "roles": ["card_admin"], "ends_on": ENDS},
        headers=bearer(boss["token"]),
    )
    assert invited.status_code == 201 and invited.json()["status"] == "invited"
    agent_id = invited.json()["id"]
    mine = (await client.get(f"{API}/organisations", headers=bearer(agent["token"]))).json()
    assert [(m["organisation_id"], m["status"]) for m in mine] == [(org_id, "invited")]
    assert (await flows.act_for(agent["token"], org_id)).status_code == 403
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 403
    # The representative cannot make the invitation an appointment on the person's behalf.
    forced = await client.patch(
        f"{API}/organisations/{org_id}/agents/{agent_id}",
        json={"status": "active"},
        headers=bearer(boss["token"]),
    )
    assert forced.status_code == 409
    # Nor can anyone else accept it.
    outsider = await flows.verified(SUN)
    stranger = await client.post(
        f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(outsider["token"])
    )
    assert stranger.status_code == 404

    accepted = await client.post(
        f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(agent["token"])
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "active"
    assert accepted.json()["roles"] == ["card_admin"]
    assert (await flows.act_for(agent["token"], org_id)).status_code == 200
    assert (
        await client.get(f"/probe/orgs/{org_id}/cards", headers=bearer(agent["token"]))
    ).status_code == 200
    again = await client.post(
        f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(agent["token"])
    )
    assert again.status_code == 404  # nothing pending any more
    await seal_all(db)
    actions = [
        (r["action"], r["actor_id"], r["target_id"])
        for r in await db.fetch(
            "SELECT action, actor_id, target_id FROM identity.audit_log"
            " WHERE action LIKE 'identity.agent.%' AND outcome = 'success' ORDER BY seq"
        )
    ]
    assert actions == [
        ("identity.agent.invite", boss["account_id"], agent["account_id"]),
        ("identity.agent.accept", agent["account_id"], agent["account_id"]),
    ]


async def test_a_declined_invitation_gives_no_role_and_may_be_renewed(
    client: AsyncTestClient[Litestar], flows: Flows, db: Any
) -> None:
    boss = await flows.verified(ZHANG)
    org_id = (await _register_company(client, boss["token"])).json()["id"]
    agent = await flows.verified(LI)
    url = f"{API}/organisations/{org_id}/agents"
    body = {"id_number": LI.id_number, "name": LI.name, "roles": ["filings"], "ends_on": ENDS}
    assert (await client.post(url, json=body, headers=bearer(boss["token"]))).status_code == 201
    declined = await client.post(
        f"{API}/organisations/{org_id}/invitation/decline", headers=bearer(agent["token"])
    )
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    late = await client.post(
        f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(agent["token"])
    )
    assert late.status_code == 404
    assert (await flows.act_for(agent["token"], org_id)).status_code == 403
    assert (await client.get(f"{API}/organisations", headers=bearer(agent["token"]))).json() == []
    listed = (await client.get(url, headers=bearer(boss["token"]))).json()
    assert sorted(a["status"] for a in listed) == ["active", "declined"]  # the representative sees it
    await seal_all(db)
    declines = "SELECT count(*) FROM identity.audit_log WHERE action = 'identity.agent.decline'"
    assert await db.fetchval(declines) == 1
    # A new invitation is possible after a refusal.
    assert (await client.post(url, json=body, headers=bearer(boss["token"]))).status_code == 201


async def test_the_invitation_form_is_rate_limited_per_representative(
    client: AsyncTestClient[Litestar], flows: Flows, db: Any
) -> None:
    boss = await flows.verified(ZHANG)
    org_id = (await _register_company(client, boss["token"])).json()["id"]
    await flows.verified(LI)
    url = f"{API}/organisations/{org_id}/agents"

    async def invite(id_number: str, name: str) -> Any:
        body = {"id_number": id_number, "name": name, "roles": ["filings"], "ends_on": ENDS}
        return await client.post(url, json=body, headers=bearer(boss["token"]))

    # Wrong names for an account that exists, and an ID number without an account: one answer.
    probes = [await invite(LI.id_number, "某某") for _ in range(4)] + [await invite(ZHAO.id_number, "某某")]
    assert {(p.status_code, p.json()["errors"][0]["rule"]) for p in probes} == {(422, "no_matching_account")}
    # Then the representative is stopped, even with the right name.
    limited = await invite(LI.id_number, LI.name)
    assert limited.status_code == 429 and "retry-after" in limited.headers
    await seal_all(db)
    failures = await db.fetchval(
        "SELECT count(*) FROM identity.audit_log"
        " WHERE action = 'identity.agent.invite' AND outcome = 'failure'"
    )
    assert failures == 5
    # Their own sign-in is not locked by it.
    assert (await flows.login_code(ZHANG.mobile))["token"]
