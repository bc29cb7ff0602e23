"""The provider's access tokens at identity's own endpoints: signing out with one ends its grant,
and a change of the person's credentials ends every grant (ASVS 7.4.1, 7.4.3)."""

from __future__ import annotations

from typing import Any

from tests.identity.conftest import API, ZHANG, bearer
from tests.oidc.conftest import Kit, basic

PASSWORD = "correct horse battery staple"


async def _city_app_tokens(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    """A first-party client's tokens for ZHANG, holding the api scope (the API's bearer guard takes them)."""
    app = await kit.register(name="City app", first_party=True, scopes=["openid", "api", "phone"])
    query, verifier = await kit.sign_in(app["client_id"], ZHANG.mobile, scope="openid api")
    response = await kit.tokens(app["client_id"], app["client_secret"], query["code"], verifier)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    assert "refresh_token" in tokens
    return app, tokens


async def _refresh(kit: Kit, app: dict[str, Any], token: str) -> Any:
    return await kit.client.post(
        "/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(app["client_id"], app["client_secret"]),
    )


async def test_signing_out_with_a_provider_access_token_ends_its_grant(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app, tokens = await _city_app_tokens(kit)
    headers = bearer(tokens["access_token"])
    assert (await kit.client.get(f"{API}/me", headers=headers)).status_code == 200
    out = await kit.client.delete(f"{API}/sessions/current", headers=headers)
    assert out.status_code == 204
    assert (await kit.client.get(f"{API}/me", headers=headers)).status_code == 401
    refreshed = await _refresh(kit, app, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    audited = await kit.db.fetch(
        "SELECT outcome, target_kind, details->>'grants_revoked' AS n FROM identity.audit_events"
        " WHERE action = 'identity.session.end'"
    )
    assert [(a["outcome"], a["target_kind"], a["n"]) for a in audited] == [("success", "oidc_grant", "1")]


async def test_a_password_change_ends_the_persons_grants(kit: Kit) -> None:
    owner = await kit.flows.register(ZHANG.mobile, password=PASSWORD)
    app, tokens = await _city_app_tokens(kit)
    changed = await kit.client.put(
        f"{API}/me/password",
        json={"password": "a completely new passphrase", "current_password": PASSWORD},
        headers=bearer(owner["token"]),
    )
    assert changed.status_code == 204
    assert (await kit.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))).status_code == 401
    refreshed = await _refresh(kit, app, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert (await kit.client.get(f"{API}/me", headers=bearer(owner["token"]))).status_code == 200
