"""Introspection (RFC 7662) and revocation (RFC 7009) of the provider's tokens: what an
authenticated client learns about a token and how a token stops working; public clients, who prove
nothing by naming their id, may not introspect."""

from __future__ import annotations

from tests.identity.conftest import ZHANG
from tests.oidc.conftest import Kit, basic


async def test_introspection_and_revocation(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    other = await kit.register(name="Partner B")
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    tokens = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()
    auth = basic(partner["client_id"], partner["client_secret"])
    at = (
        await kit.client.post("/oidc/introspect", data={"token": tokens["access_token"]}, headers=auth)
    ).json()
    assert at["active"] is True and at["client_id"] == partner["client_id"] and "openid" in at["scope"]
    rt = (
        await kit.client.post("/oidc/introspect", data={"token": tokens["refresh_token"]}, headers=auth)
    ).json()
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
    foreign = await kit.client.post(
        "/oidc/introspect",
        data={"token": tokens["access_token"]},
        headers=basic(other["client_id"], other["client_secret"]),
    )
    assert foreign.json() == {"active": False}
    assert (
        await kit.client.post("/oidc/introspect", data={"token": tokens["access_token"]})
    ).status_code == 401
    assert (await kit.client.post("/oidc/introspect", data={"token": "garbage"}, headers=auth)).json() == {
        "active": False
    }
    assert (
        await kit.client.post("/oidc/revoke", data={"token": tokens["refresh_token"]}, headers=auth)
    ).status_code == 200
    for token in (tokens["refresh_token"], tokens["access_token"]):  # the grant is gone
        assert (await kit.client.post("/oidc/introspect", data={"token": token}, headers=auth)).json() == {
            "active": False
        }
    assert (
        await kit.client.post("/oidc/revoke", data={"token": "whatever"}, headers=auth)
    ).status_code == 200


async def test_introspection_refuses_public_clients(kit: Kit) -> None:
    """RFC 7662 §2.1, §4: only an authenticated client may introspect; a public client's id is no
    credential (discovery does not list ``none`` for introspection). Revocation stays open to it
    (RFC 7009 §2.1: the client's own tokens)."""
    await kit.flows.register(ZHANG.mobile)
    app_client = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        redirect_uris=["cn.city.app:/callback"],
        scopes=["openid", "profile"],
    )
    cid = app_client["client_id"]
    query, verifier = await kit.sign_in(cid, ZHANG.mobile, redirect_uri="cn.city.app:/callback")
    response = await kit.tokens(cid, None, query["code"], verifier, redirect_uri="cn.city.app:/callback")
    assert response.status_code == 200, response.text
    tokens = response.json()
    for token in (tokens["access_token"], tokens["refresh_token"], "garbage"):
        refused = await kit.client.post("/oidc/introspect", data={"token": token, "client_id": cid})
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert refused.headers["www-authenticate"].startswith("Basic ")
        assert "active" not in refused.json()
    meta = (await kit.client.get("/.well-known/openid-configuration")).json()
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    revoked = await kit.client.post("/oidc/revoke", data={"token": tokens["refresh_token"], "client_id": cid})
    assert revoked.status_code == 200
