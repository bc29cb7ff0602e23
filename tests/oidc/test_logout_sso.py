"""Single sign-on across partners, the person's sessions and consents, CSRF and clickjacking,
checklist 10 (RP-initiated logout variants; back-channel logout tokens to every client)."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlencode

import jwt

from tests.identity.conftest import ZHANG, bearer
from tests.oidc.conftest import ISSUER, Kit, claims_of, query_of
from tests.oidc.receiver import receiver

OTHER = "https://partner-b.example/callback"
AFTER = "https://partner-a.example/signed-out"


async def _tokens(kit: Kit, partner: dict[str, Any], redirect_uri: str) -> dict[str, Any]:
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, redirect_uri=redirect_uri)
    response = await kit.tokens(
        partner["client_id"], partner["client_secret"], query["code"], verifier, redirect_uri=redirect_uri
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_sso_second_partner_needs_no_login_and_backchannel_reaches_both(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    with receiver() as rp:
        a = await kit.register(backchannel_logout_uri=rp.url, post_logout_redirect_uris=[AFTER])
        b = await kit.register(name="Partner B", redirect_uris=[OTHER], backchannel_logout_uri=rp.url)
        tokens_a = await _tokens(kit, a, "https://partner-a.example/callback")
        # Partner B: no login page, only its own consent.
        response, verifier = await kit.authorize(b["client_id"], redirect_uri=OTHER)
        page = await kit.follow(response)
        assert "/send-code" not in page.text and "/consent" in page.text
        done = await kit.consent(page)
        code = query_of(done.headers["location"])["code"]
        tokens_b = (
            await kit.tokens(b["client_id"], b["client_secret"], code, verifier, redirect_uri=OTHER)
        ).json()
        sid = claims_of(tokens_a["id_token"])["sid"]
        assert claims_of(tokens_b["id_token"])["sid"] == sid
        # RP-initiated logout with a valid hint: no confirmation, redirect with state.
        response = await kit.client.get(
            "/oidc/logout",
            params={"id_token_hint": tokens_a["id_token"], "post_logout_redirect_uri": AFTER, "state": "bye"},
            follow_redirects=False,
        )
        assert response.status_code == 303 and response.headers["location"] == AFTER + "?state=bye"
        assert len(rp.tokens) == 2
        jwks = jwt.PyJWKSet.from_dict((await kit.client.get("/oidc/jwks")).json())
        audiences = set()
        for token in rp.tokens:
            header = jwt.get_unverified_header(token)
            assert header["typ"] == "logout+jwt"
            claims = jwt.decode(
                token,
                jwks[header["kid"]].key,
                algorithms=[header["alg"]],
                audience=[a["client_id"], b["client_id"]],
                issuer=ISSUER,
            )
            assert claims["sid"] == sid and "nonce" not in claims and claims["jti"]
            assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
            audiences.add(claims["aud"])
        assert audiences == {a["client_id"], b["client_id"]}
    # The session and the tokens issued in it are gone.
    authorize, _ = await kit.authorize(a["client_id"], prompt="none")
    assert query_of(authorize.headers["location"])["error"] == "login_required"
    refreshed = await kit.client.post(
        "/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens_b["refresh_token"]},
        auth=(b["client_id"], b["client_secret"]),
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_logout_variants(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    a = await kit.register(post_logout_redirect_uris=[AFTER])
    tokens = await _tokens(kit, a, "https://partner-a.example/callback")
    bad = await kit.client.get(
        "/oidc/logout",
        params={"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert bad.status_code == 400 and "location" not in bad.headers
    header, payload, signature = tokens["id_token"].split(".")
    modified = await kit.client.get(
        "/oidc/logout",
        params={"id_token_hint": f"{header}.{payload}x.{signature}", "post_logout_redirect_uri": AFTER},
    )
    assert modified.status_code == 400 and "location" not in modified.headers
    unregistered = await kit.client.get(
        "/oidc/logout", params={"client_id": a["client_id"], "post_logout_redirect_uri": AFTER + "/x"}
    )
    assert unregistered.status_code == 400
    # No hint: the person confirms (forced-logout protection), with a CSRF token.
    confirm = await kit.client.get(
        "/oidc/logout", params={"client_id": a["client_id"], "post_logout_redirect_uri": AFTER, "state": "s"}
    )
    assert confirm.status_code == 200 and 'name="csrf"' in confirm.text
    assert confirm.headers["x-frame-options"] == "DENY"
    forged = await kit.client.post("/oidc/logout", data={"confirm": "yes", "csrf": "forged"})
    assert forged.status_code == 403
    csrf = confirm.text.split('name="csrf" value="')[1].split('"')[0]
    done = await kit.client.post(
        "/oidc/logout",
        data={
            "confirm": "yes",
            "csrf": csrf,
            "client_id": a["client_id"],
            "post_logout_redirect_uri": AFTER,
            "state": "s",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == AFTER + "?state=s"
    # Without a session: nothing to confirm.
    plain = await kit.client.get("/oidc/logout")
    assert plain.status_code == 200


async def test_logout_confirmation_keeps_the_hinted_client(kit: Kit) -> None:
    """A valid id_token_hint from an earlier session (another sid): the person confirms, and the
    confirmation still knows the hinted client, so its post_logout_redirect_uri is accepted and
    the session ends (the hidden fields carry every value, escaped, even one with & or <)."""
    await kit.flows.register(ZHANG.mobile)
    a = await kit.register(post_logout_redirect_uris=[AFTER])
    old = await _tokens(kit, a, "https://partner-a.example/callback")
    # A new sign-in in this browser without its SSO cookie: a new SSO session, the old ID token's
    # sid is stale (the same person re-authenticating in the same session would keep the sid).
    kit.client.cookies.delete("citizen_sso", domain="id.city.test")
    response, _ = await kit.authorize(a["client_id"])
    assert (await kit.login_sms(await kit.follow(response), ZHANG.mobile)).status_code == 303
    state = 's&1<"2'
    confirm = await kit.client.get(
        "/oidc/logout",
        params={"id_token_hint": old["id_token"], "post_logout_redirect_uri": AFTER, "state": state},
    )
    assert confirm.status_code == 200 and 'name="csrf"' in confirm.text
    fields = {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm.text)
    }
    assert fields["client_id"] == a["client_id"] and fields["state"] == state
    done = await kit.client.post("/oidc/logout", data={**fields, "confirm": "yes"}, follow_redirects=False)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == AFTER + "?" + urlencode({"state": state})
    after, _ = await kit.authorize(a["client_id"], prompt="none")
    assert query_of(after.headers["location"]).get("error") == "login_required"


async def test_pages_csrf_cookies_and_clickjacking(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    response, _ = await kit.authorize(partner["client_id"])
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    page = await kit.follow(response)
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    _, base = kit.form_of(page)
    forged = await kit.client.post(f"{base}/send-code", data={"csrf": "x", "mobile": ZHANG.mobile})
    assert forged.status_code == 403
    # Another browser (no cookie) cannot use the interaction.
    own = kit.client.cookies.get("citizen_bid")
    kit.client.cookies.set("citizen_bid", "someone-else-entirely-000000000", domain="id.city.test")
    kit.client.cookies.delete("citizen_bid", domain="id.city.test")
    stolen = await kit.client.get(base)
    assert stolen.status_code == 400
    kit.client.cookies.set("citizen_bid", own or "", domain="id.city.test")
    done = await kit.login_sms(page, ZHANG.mobile)
    sso_cookie = [v for k, v in done.headers.items() if k == "set-cookie"] or [
        kit.client.cookies.get("citizen_sso")
    ]
    assert kit.client.cookies.get("citizen_sso")
    assert sso_cookie


async def test_person_lists_and_ends_sessions_and_revokes_consent(kit: Kit) -> None:
    person = await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    tokens = await _tokens(kit, partner, "https://partner-a.example/callback")
    listed = (
        await kit.client.get("/api/v1/identity/me/sso-sessions", headers=bearer(person["token"]))
    ).json()
    assert len(listed) == 1 and listed[0]["clients"] == [partner["client_id"]] and listed[0]["current"]
    consents = (await kit.client.get("/api/v1/identity/me/consents", headers=bearer(person["token"]))).json()
    assert [c["client_id"] for c in consents] == [partner["client_id"]]
    revoked = await kit.client.delete(
        f"/api/v1/identity/me/consents/{partner['client_id']}", headers=bearer(person["token"])
    )
    assert revoked.status_code == 204
    userinfo = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401
    # Consent is asked again.
    response, _ = await kit.authorize(partner["client_id"])
    assert "/consent" in (await kit.follow(response)).text
    ended = await kit.client.delete(
        f"/api/v1/identity/me/sso-sessions/{listed[0]['session_id']}", headers=bearer(person["token"])
    )
    assert ended.status_code == 204
    assert (
        await kit.client.get("/api/v1/identity/me/sso-sessions", headers=bearer(person["token"]))
    ).json() == []
    response, _ = await kit.authorize(partner["client_id"], prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"
