"""An organisation access token from token exchange carries the roles held when it was issued; a
representative suspending the agent, removing them or taking the role away ends it at once
(identity/oidc/org_tokens.py), not when it expires. The person's own token stays good."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tests.identity.conftest import API, LI, bearer
from tests.identity.test_organisations import _company_with_agent
from tests.oidc.conftest import ISSUER, Kit, basic
from tests.oidc.test_exchange_api import AT, EXCHANGE, probe_org

WHO = "/api/v1/identity/session"


async def _exchange(kit: Kit, web: dict[str, Any], subject: str, org_id: str) -> Any:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": subject,
        "subject_token_type": AT,
        "organisation": org_id,
        "scope": "card_admin",
        "audience": ISSUER + "/api",
    }
    return await kit.client.post(
        "/oidc/token",
        headers={
            **basic(web["client_id"], web["client_secret"]),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=urlencode(form),
    )


async def test_losing_the_role_ends_the_organisation_token(kit: Kit) -> None:
    kit.client.app.register(probe_org)
    org_id, boss, _agent, appointment = await _company_with_agent(kit.client, kit.flows)
    web = await kit.register(
        name="City web page",
        first_party=True,
        grant_types=["authorization_code", "refresh_token", EXCHANGE],
        scopes=["openid", "profile", "organisations", "api"],
    )
    query, verifier = await kit.sign_in(web["client_id"], LI.mobile, scope="openid organisations api")
    person = (await kit.tokens(web["client_id"], web["client_secret"], query["code"], verifier)).json()
    probe = f"/probe/oidc/cards/{org_id}"
    agent_url = f"{API}/organisations/{org_id}/agents/{appointment}"

    first = await _exchange(kit, web, person["access_token"], org_id)
    second = await _exchange(kit, web, person["access_token"], org_id)
    assert first.status_code == second.status_code == 200, first.text
    tokens = [first.json()["access_token"], second.json()["access_token"]]
    for token in tokens:
        assert (await kit.client.get(probe, headers=bearer(token))).status_code == 200

    suspended = await kit.client.patch(agent_url, json={"status": "suspended"}, headers=bearer(boss["token"]))
    assert suspended.status_code == 200, suspended.text
    for token in tokens:  # both, though issued before and still unexpired
        assert (await kit.client.get(probe, headers=bearer(token))).status_code == 401
    # The person is still themselves: their own token works; no new organisation token is issued.
    assert (await kit.client.get(WHO, headers=bearer(person["access_token"]))).status_code == 200
    refused = await _exchange(kit, web, person["access_token"], org_id)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"

    reinstated = await kit.client.patch(agent_url, json={"status": "active"}, headers=bearer(boss["token"]))
    assert reinstated.status_code == 200, reinstated.text
    again = await _exchange(kit, web, person["access_token"], org_id)
    assert again.status_code == 200, again.text
    token = again.json()["access_token"]
    assert (await kit.client.get(probe, headers=bearer(token))).status_code == 200
    removed = await kit.client.delete(agent_url, headers=bearer(boss["token"]))
    assert removed.status_code == 200, removed.text
    assert (await kit.client.get(probe, headers=bearer(token))).status_code == 401
