"""Checklist 8 (ID token claims, at_hash, signature by the client's algorithm), 9 (UserInfo GET,
POST header, POST body; sub consistent and pairwise per sector) and 4 (PAR)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import jwt

from identity.oidc.claims import wanted
from identity.oidc.grants import ClaimRequests
from identity.oidc.jose import half_hash
from tests.identity.conftest import ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, claims_of, pkce, query_of


async def _tokens(kit: Kit, partner: dict[str, Any], **extra: str) -> tuple[dict[str, Any], str]:
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, **extra)
    response = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert response.status_code == 200, response.text
    return response.json(), query["state"]


async def test_id_token_claims_and_signature_per_client_algorithm(kit: Kit) -> None:
    await kit.flows.verified(ZHANG)
    jwks = None
    for alg in ("ES256", "RS256", "EdDSA"):
        partner = await kit.register(name=f"Partner {alg}", id_token_alg=alg)
        tokens, _ = await _tokens(kit, partner, nonce="n-" + alg)
        jwks = jwt.PyJWKSet.from_dict((await kit.client.get("/oidc/jwks")).json())
        header = jwt.get_unverified_header(tokens["id_token"])
        assert header["alg"] == alg and header["kid"] in {k.key_id for k in jwks.keys}
        claims = jwt.decode(
            tokens["id_token"],
            jwks[header["kid"]].key,
            algorithms=[alg],
            audience=partner["client_id"],
            issuer=ISSUER,
        )
        now = time.time()
        assert claims["nonce"] == "n-" + alg and claims["sub"] and claims["azp"] == partner["client_id"]
        assert now - 60 < claims["iat"] <= now + 5 and claims["exp"] < now + 86400 * 365 * 50
        assert (
            now - 3600 < claims["auth_time"] <= now + 5
            and claims["acr"] == "loa2"
            and claims["amr"] == ["sms"]
        )
        assert claims["at_hash"] == half_hash(tokens["access_token"], alg)
        assert "name" not in claims  # scope claims are at UserInfo
        # The access token is always ES256 (the configured, pinned algorithm) and typed at+jwt.
        assert jwt.get_unverified_header(tokens["access_token"])["typ"] == "at+jwt"
    assert jwks is not None


async def test_userinfo_three_ways_and_claims_by_scope(kit: Kit) -> None:
    await kit.flows.verified(ZHANG)
    partner = await kit.register()
    tokens, _ = await _tokens(kit, partner, scope="openid profile phone real_name organisations")
    sub = claims_of(tokens["id_token"])["sub"]
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    got = (await kit.client.get("/oidc/userinfo", headers=bearer)).json()
    posted = (await kit.client.post("/oidc/userinfo", headers=bearer)).json()
    body = (await kit.client.post("/oidc/userinfo", data={"access_token": tokens["access_token"]})).json()
    assert got == posted == body and got["sub"] == sub
    assert got["name"] == ZHANG.name and got["real_name_verified"] is True and got["loa"] == 2
    assert got["phone_number"] == "+86" + ZHANG.mobile and got["phone_number_verified"] is True
    assert got["organisations"] == [] and "birthdate" in got
    only_profile, _ = await _tokens(kit, partner, scope="openid profile")
    masked = (
        await kit.client.get(
            "/oidc/userinfo", headers={"Authorization": f"Bearer {only_profile['access_token']}"}
        )
    ).json()
    assert masked["name"] == ZHANG.name[0] + "*" * (len(ZHANG.name) - 1) and "phone_number" not in masked
    for bad in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {tokens['id_token']}"}):
        response = await kit.client.get("/oidc/userinfo", headers=bad)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


async def test_pairwise_subjects_per_sector(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    health_a = await kit.register(name="Health A", subject_type="pairwise", sector_identifier="health.city")
    health_b = await kit.register(name="Health B", subject_type="pairwise", sector_identifier="health.city")
    shop = await kit.register(name="Shop", subject_type="pairwise", sector_identifier="shop.example")
    public = await kit.register(name="City service")
    subs = {}
    for name, partner in (("a", health_a), ("b", health_b), ("shop", shop), ("public", public)):
        tokens, _ = await _tokens(kit, partner)
        subs[name] = claims_of(tokens["id_token"])["sub"]
        info = (
            await kit.client.get(
                "/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
        ).json()
        assert info["sub"] == subs[name]
    assert subs["a"] == subs["b"] != subs["shop"] != subs["public"]
    assert len({subs["a"], subs["shop"], subs["public"]}) == 3


async def test_pushed_authorization_requests(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(require_par=True)
    other = await kit.register(name="Partner B")
    # Non-PAR requests are refused for this client.
    response, _ = await kit.authorize(partner["client_id"])
    assert query_of(response.headers["location"])["error"] == "invalid_request"
    verifier, challenge = pkce()
    form = {
        "response_type": "code",
        "client_id": partner["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "par-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    auth = basic(partner["client_id"], partner["client_secret"])
    assert (await kit.client.post("/oidc/par", data=form)).status_code == 401  # only authenticated clients
    bad = await kit.client.post("/oidc/par", data={**form, "request_uri": "urn:x"}, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    plain = await kit.client.post("/oidc/par", data={**form, "code_challenge_method": "plain"}, headers=auth)
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_request"
    pushed = await kit.client.post("/oidc/par", data=form, headers=auth)
    assert pushed.status_code == 201, pushed.text
    request_uri = pushed.json()["request_uri"]
    assert 0 < pushed.json()["expires_in"] <= 60 and request_uri.startswith(
        "urn:ietf:params:oauth:request_uri:"
    )
    # Bound to the client that pushed it.
    stolen = await kit.client.get(
        "/oidc/authorize", params={"client_id": other["client_id"], "request_uri": request_uri}
    )
    assert stolen.status_code == 400 and "location" not in stolen.headers
    params = {"client_id": partner["client_id"], "request_uri": request_uri}
    page = await kit.follow(await kit.client.get("/oidc/authorize", params=params, follow_redirects=False))
    # Opening it again before completion is fine ...
    again = await kit.follow(await kit.client.get("/oidc/authorize", params=params, follow_redirects=False))
    assert again.status_code == 200
    page = await kit.login_sms(page, ZHANG.mobile)
    done = await kit.consent(page)
    query = query_of(done.headers["location"])
    assert query["state"] == "par-state"
    assert (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).status_code == 200
    # ... after completion, never.
    used = await kit.client.get("/oidc/authorize", params=params)
    assert used.status_code == 400 and "location" not in used.headers


def test_claims_are_released_only_by_scopes_granted_and_allowed() -> None:
    everything = ("openid", "profile", "phone", "real_name", "organisations")
    asked: ClaimRequests = {"phone_number": None, "birthdate": {"essential": True}, "loa": None}
    assert wanted(("openid",), asked, allowed=everything) == set()
    assert wanted(("openid", "profile"), asked, allowed=everything) == {"name", "updated_at"}
    # A scope granted once but no longer allowed for the client releases nothing any more.
    assert wanted(("openid", "phone"), asked, allowed=("openid",)) == set()
    assert "phone_number" in wanted(("openid", "phone"), asked, allowed=everything)


async def test_claims_parameter_cannot_reach_past_the_consented_scopes(kit: Kit) -> None:
    """OpenID Connect Core §5.5 lets the provider decline requested claims: a claim the granted
    (consented) and allowed scopes do not carry is not released, whatever ``claims`` asks."""
    await kit.flows.verified(ZHANG)
    personal = ("phone_number", "name", "birthdate", "gender", "organisations", "loa", "real_name_verified")
    claims = json.dumps({"userinfo": {name: {"essential": True} for name in personal}})
    only_openid = await kit.register(name="Partner openid", scopes=["openid"])
    response, verifier = await kit.authorize(only_openid["client_id"], scope="openid", claims=claims)
    page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
    assert page.status_code == 200 and "/consent" in page.text
    assert re.findall(r"<li>[^<]*</li>", page.text) == ["<li>您的账号标识</li>"]  # all the consent covers
    query = query_of((await kit.consent(page)).headers["location"])
    response = await kit.tokens(
        only_openid["client_id"], only_openid["client_secret"], query["code"], verifier
    )
    assert response.status_code == 200, response.text
    bearer = {"Authorization": f"Bearer {response.json()['access_token']}"}
    info = (await kit.client.get("/oidc/userinfo", headers=bearer)).json()
    assert set(info) == {"sub"}
    # Allowed more, granted profile only: the display name stays masked, nothing else comes.
    partner = await kit.register()
    tokens, _ = await _tokens(kit, partner, scope="openid profile", claims=claims)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = (await kit.client.get("/oidc/userinfo", headers=bearer)).json()
    assert set(info) == {"sub", "name", "updated_at"}
    assert info["name"] == ZHANG.name[0] + "*" * (len(ZHANG.name) - 1)


async def test_claims_parameter_with_null_members_is_served(kit: Kit) -> None:
    """The standard form ``{"userinfo": {"name": null}}`` (Core §5.5.1) is kept with the grant and
    read back at the token endpoint, at refresh, at introspection and at UserInfo."""
    await kit.flows.verified(ZHANG)
    partner = await kit.register()
    claims = json.dumps(
        {
            "userinfo": {"name": None, "phone_number": None, "nickname": None},
            "id_token": {"auth_time": {"essential": True}, "acr": None},
        }
    )
    tokens, _ = await _tokens(kit, partner, scope="openid phone", claims=claims)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = (await kit.client.get("/oidc/userinfo", headers=bearer)).json()
    assert info["phone_number"] == "+86" + ZHANG.mobile and "name" not in info
    auth = basic(partner["client_id"], partner["client_secret"])
    introspected = await kit.client.post(
        "/oidc/introspect", data={"token": tokens["refresh_token"]}, headers=auth
    )
    assert introspected.json()["active"] is True
    refreshed = await kit.client.post(
        "/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=auth,
    )
    assert refreshed.status_code == 200, refreshed.text
