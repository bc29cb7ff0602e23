"""The acting context belongs to identity's own sessions: an OpenID provider's access token has no
place for it (its client acts for an organisation through token exchange), so asking to switch
with one is refused and audited as a failure, never answered as if it had happened."""

from __future__ import annotations

from typing import Any

from identity.audit import seal_all
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, ZHANG, bearer
from tests.oidc.conftest import Kit

REDIRECT = "cn.city.app:/callback"


async def test_an_openid_access_token_cannot_switch_the_acting_context(kit: Kit, db: Any) -> None:
    boss = await kit.flows.verified(ZHANG)
    company = ENTERPRISES[0]
    org = await kit.client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(boss["token"]),
    )
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]  # ZHANG, its legal representative, holds every role
    app_client = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=[REDIRECT],
        scopes=["openid", "api"],
    )
    query, verifier = await kit.sign_in(
        app_client["client_id"], ZHANG.mobile, scope="openid api", redirect_uri=REDIRECT
    )
    tokens = (
        await kit.tokens(app_client["client_id"], None, query["code"], verifier, redirect_uri=REDIRECT)
    ).json()
    headers = bearer(tokens["access_token"])
    assert (await kit.client.get(f"{API}/me", headers=headers)).status_code == 200

    for organisation in (org_id, None):
        refused = await kit.client.put(
            f"{API}/session/context", json={"organisation_id": organisation}, headers=headers
        )
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "/problems/context-not-carried"
    whoami = (await kit.client.get(f"{API}/session", headers=headers)).json()
    assert whoami["acting_for"] is None and whoami["org_roles"] == []

    await seal_all(db)
    rows = await db.fetch(
        "SELECT outcome, target_id, acting_for, details->>'rule' AS rule FROM identity.audit_log"
        " WHERE action = 'identity.context.switch' AND actor_id = $1 ORDER BY seq",
        boss["account_id"],
    )
    assert [(r["outcome"], r["target_id"], r["acting_for"], r["rule"]) for r in rows] == [
        ("failure", org_id, None, "not_an_identity_session"),
        ("failure", None, None, "not_an_identity_session"),
    ]
