"""Fixes from the second OIDC review: the assertion audience, re-login in one browser,
prompt=select_account, loopback redirect ports, the bare userinfo challenge, client authentication
throttling, client id characters and ID-token-only hints."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from identity.oidc.sso import COOKIE
from tests.identity.conftest import API, LI, ZHANG, bearer
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, claims_of, query_of

TOKEN = "/oidc/token"


async def test_private_key_jwt_audience_is_the_issuer_only_as_a_string(kit: Kit) -> None:
    """FAPI 2.0 Security Profile §5.3.2.1 (OIDF audience-injection advisory, January 2025): an
    assertion whose aud is an endpoint URL, or a list (even one naming the issuer), is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "alg": "ES256", "use": "sig"}
    cid = await kit.register_key_client(public)

    def assertion(aud: Any) -> str:
        now = int(time.time())
        claims = {"iss": cid, "sub": cid, "aud": aud, "iat": now, "exp": now + 60}
        claims["jti"] = secrets.token_urlsafe(12)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    async def call(aud: Any) -> Any:
        return await kit.assertion_grant(assertion(aud))

    refused = (
        f"{ISSUER}/oidc/token",
        f"{ISSUER}/oidc/par",
        f"{ISSUER}/oidc/introspect",
        f"{ISSUER}/oidc/revoke",
        [ISSUER],
        ["https://attacker.example", ISSUER],
        ISSUER + "/",
    )
    for aud in refused:
        response = await call(aud)
        assert response.status_code == 401, (aud, response.text)
        assert response.json()["error"] == "invalid_client"
    assert (await call(ISSUER)).status_code == 200


async def _refresh(kit: Kit, client: dict[str, Any], token: str) -> Any:
    return await kit.client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(client["client_id"], client["client_secret"]),
    )


async def test_same_person_signing_in_again_keeps_the_other_clients_grants(kit: Kit) -> None:
    """OIDC Core §3.1.2.1: client B's prompt=login (or max_age) asks for a new authentication, not a
    logout: client A's grants (with and without offline_access) live on, in the same session."""
    await kit.flows.register(ZHANG.mobile)
    a = await kit.register(name="A", grant_types=["authorization_code", "refresh_token"])
    b = await kit.register(name="B")
    held = []
    for scope in ("openid offline_access", "openid profile"):
        query, verifier = await kit.sign_in(a["client_id"], ZHANG.mobile, scope=scope)
        tokens = (await kit.tokens(a["client_id"], a["client_secret"], query["code"], verifier)).json()
        assert "refresh_token" in tokens, tokens
        held.append(tokens)
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        response, verifier = await kit.authorize(b["client_id"], **extra)
        page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
        if page.status_code == 200 and "/consent" in page.text:
            page = await kit.consent(page)
        assert page.status_code == 303, page.text
        query = query_of(page.headers["location"])
        got = await kit.tokens(b["client_id"], b["client_secret"], query["code"], verifier)
        assert claims_of(got.json()["id_token"])["sid"] == claims_of(held[0]["id_token"])["sid"]
        for i, tokens in enumerate(held):
            refreshed = await _refresh(kit, a, tokens["refresh_token"])
            assert refreshed.status_code == 200, (extra, i, refreshed.text)
            held[i] = refreshed.json()
    # A's session is still this browser's: prompt=none answers A with a code.
    response, _ = await kit.authorize(a["client_id"], prompt="none")
    assert "code" in query_of(response.headers["location"])


async def test_signing_in_again_gives_the_browser_a_new_cookie_and_retires_the_old(kit: Kit) -> None:
    """ASVS 3.2.1: a new session token at authentication. The session (its sid, clients and grants)
    lives on, but a cookie taken before the re-authentication no longer opens it."""
    await kit.flows.register(ZHANG.mobile)
    a = await kit.register(name="A")
    await kit.sign_in(a["client_id"], ZHANG.mobile)
    before = kit.client.cookies.get(COOKIE)
    assert before
    response, _ = await kit.authorize(a["client_id"], prompt="login")
    page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
    if page.status_code == 200 and "/consent" in page.text:
        page = await kit.consent(page)
    assert page.status_code == 303, page.text
    after = kit.client.cookies.get(COOKIE)
    assert after and after != before
    assert after.split(".")[0] == before.split(".")[0]  # the same session id
    kit.client.cookies.set(COOKIE, before)  # someone holding the old cookie
    stale, _ = await kit.authorize(a["client_id"], prompt="none")
    assert query_of(stale.headers["location"]).get("error") == "login_required"
    kit.client.cookies.set(COOKIE, after)
    fresh, _ = await kit.authorize(a["client_id"], prompt="none")
    assert "code" in query_of(fresh.headers["location"])


async def test_another_person_signing_in_ends_the_previous_session(kit: Kit) -> None:
    """A different account signing in in this browser still ends the previous person's session
    (its grants, offline ones too, and back-channel logout)."""
    await kit.flows.register(ZHANG.mobile)
    await kit.flows.register(LI.mobile)
    a = await kit.register(name="A", grant_types=["authorization_code", "refresh_token"])
    query, verifier = await kit.sign_in(a["client_id"], ZHANG.mobile, scope="openid offline_access")
    tokens = (await kit.tokens(a["client_id"], a["client_secret"], query["code"], verifier)).json()
    response, _ = await kit.authorize(a["client_id"], prompt="login")
    page = await kit.login_sms(await kit.follow(response), LI.mobile)
    if page.status_code == 200 and "/consent" in page.text:
        page = await kit.consent(page)
    assert page.status_code == 303, page.text
    assert (await _refresh(kit, a, tokens["refresh_token"])).status_code == 400


async def test_userinfo_without_credentials_gets_bare_challenges(kit: Kit) -> None:
    """RFC 6750 §3.1: a request with no authentication gets no error code in the challenge; the
    DPoP challenge names its algorithms (RFC 9449 §7.1). A bad token still gets invalid_token."""
    for response in (await kit.client.get("/oidc/userinfo"), await kit.client.post("/oidc/userinfo")):
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="citizen"') and "error" not in challenge, challenge
        assert 'DPoP realm="citizen", algs="' in challenge
    bad = await kit.client.get("/oidc/userinfo", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


async def test_loopback_redirect_uri_of_a_native_client_takes_any_port(kit: Kit) -> None:
    """RFC 8252 §7.3: for a native (public) client's loopback IP redirect URI any port is accepted,
    everything else compared exactly; ``localhost`` stays exact (§8.3), and so does a confidential
    client's URI."""
    await kit.flows.register(ZHANG.mobile)
    registered = ["http://127.0.0.1/callback", "http://[::1]:8080/cb", "http://localhost/cb"]
    native = await kit.register(client_type="public", auth_method="none", redirect_uris=registered)
    cid = native["client_id"]
    for uri in ("http://127.0.0.1:53123/callback", "http://127.0.0.1/callback", "http://[::1]:61000/cb"):
        response, _ = await kit.authorize(cid, redirect_uri=uri)
        assert response.status_code == 303, (uri, response.text)
    refused = (
        "http://127.0.0.1:53123/callback2",
        "http://127.0.0.1:53123/callback?x=1",
        "https://127.0.0.1:53123/callback",
        "http://127.0.0.2:53123/callback",
        "http://127.0.0.1:99999/callback",
        "http://user@127.0.0.1:53123/callback",
        "http://[::1]:61000/cb/",
        "http://localhost:53123/cb",
    )
    for uri in refused:
        response, _ = await kit.authorize(cid, redirect_uri=uri)
        assert response.status_code == 400, uri
    # The code is bound to the URI with the port the app used (RFC 6749 §4.1.3).
    port_uri = "http://127.0.0.1:53123/callback"
    query, verifier = await kit.sign_in(cid, ZHANG.mobile, redirect_uri=port_uri)
    assert (await kit.tokens(cid, None, query["code"], verifier, redirect_uri=port_uri)).status_code == 200
    confidential = await kit.register(redirect_uris=["http://127.0.0.1/callback"])
    response, _ = await kit.authorize(
        confidential["client_id"], redirect_uri="http://127.0.0.1:53123/callback"
    )
    assert response.status_code == 400


async def test_client_id_charset_is_enforced(kit: Kit) -> None:
    """The registration message promises client ids of A-Z a-z 0-9 . _ : - (3 to 64)."""
    for bad in ("partner a", "partner/a", "pärtner", "a<b>c", "ab"):
        response = await kit.client.post(
            f"{API}/admin/oidc-clients",
            json={"name": "X", "client_id": bad, "redirect_uris": [REDIRECT], "scopes": ["openid"]},
            headers=bearer(await kit.operator()),
        )
        assert response.status_code in (400, 422), (bad, response.text)
    assert (await kit.register(client_id="urn:city.partner_a-1"))["client_id"] == "urn:city.partner_a-1"


async def test_an_access_token_is_not_an_id_token_hint(kit: Kit) -> None:
    """OIDC Core §3.1.2.1 and RP-Initiated Logout §2: id_token_hint is an ID token; an access token
    (typ at+jwt, RFC 9068) of the same person is refused at the authorization and logout endpoints."""
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(post_logout_redirect_uris=["https://partner-a.example/bye"])
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    got = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    tokens = got.json()
    good, _ = await kit.authorize(partner["client_id"], id_token_hint=tokens["id_token"], prompt="none")
    assert "code" in query_of(good.headers["location"])
    bad, _ = await kit.authorize(partner["client_id"], id_token_hint=tokens["access_token"], prompt="none")
    assert query_of(bad.headers["location"])["error"] == "invalid_request"
    logout = await kit.client.get("/oidc/logout", params={"id_token_hint": tokens["access_token"]})
    assert logout.status_code == 400


async def test_prompt_select_account_shows_the_login_page(kit: Kit) -> None:
    """OIDC Core §3.1.2.1: select_account is not ignored. With one account per browser the login
    page is the chooser: the same person confirms and keeps the session; prompt=none with it is an
    error."""
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(grant_types=["authorization_code", "refresh_token"])
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, scope="openid offline_access")
    got = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    held = got.json()
    response, _ = await kit.authorize(partner["client_id"], prompt="select_account")
    page = await kit.follow(response)
    assert page.status_code == 200 and "/send-code" in page.text
    page = await kit.login_sms(page, ZHANG.mobile)
    if page.status_code == 200 and "/consent" in page.text:
        page = await kit.consent(page)
    assert page.status_code == 303 and "code" in query_of(page.headers["location"])
    assert (await _refresh(kit, partner, held["refresh_token"])).status_code == 200
    both, _ = await kit.authorize(partner["client_id"], prompt="none select_account")
    assert query_of(both.headers["location"])["error"] == "invalid_request"
