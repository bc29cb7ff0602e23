"""Checklist 3 (authorization endpoint) and 5 (PKCE): error pages that never redirect, error
redirects with ``iss`` and ``state``, prompt / max_age / acr_values / login_hint / ui_locales /
id_token_hint / claims, and PKCE S256 only."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from tests.identity.conftest import LI, ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, claims_of, query_of


def _no_redirect(response: Any) -> None:
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_unknown_client_and_unregistered_or_modified_redirect_show_a_page(kit: Kit) -> None:
    partner = await kit.register()
    _no_redirect((await kit.authorize("no-such-client"))[0])
    for bad in (
        "https://evil.example/callback",
        REDIRECT + "/",
        REDIRECT + "?x=1",
        REDIRECT.upper(),
        "https://partner-a.example/callback/../callback",
        "https://partner-a.example@evil.example/callback",
    ):
        _no_redirect((await kit.authorize(partner["client_id"], redirect_uri=bad))[0])
    _no_redirect((await kit.authorize(partner["client_id"], redirect_uri=""))[0])


async def test_errors_after_the_redirect_is_known_go_back_with_iss_and_state(kit: Kit) -> None:
    partner = await kit.register()
    cases = {
        "invalid_request": {"response_type": ""},
        "unsupported_response_type": {"response_type": "token"},
        "invalid_scope": {"scope": "openid payments"},
        "request_not_supported": {"request": "eyJ.x.y"},
    }
    for error, extra in cases.items():
        response, _ = await kit.authorize(partner["client_id"], **extra)
        assert response.status_code == 303, (error, response.text)
        query = query_of(response.headers["location"])
        assert response.headers["location"].startswith(REDIRECT + "?")
        assert query["error"] == error and query["iss"] == ISSUER and query["state"].startswith("st-")


async def test_pkce_is_s256_only_and_required(kit: Kit) -> None:
    partner = await kit.register()
    for extra in (
        {"code_challenge_method": "plain"},
        {"code_challenge_method": ""},
        {"code_challenge": "short"},
    ):
        response, _ = await kit.authorize(partner["client_id"], **extra)
        assert query_of(response.headers["location"])["error"] == "invalid_request", extra
    response = await kit.client.get(
        "/oidc/authorize",
        follow_redirects=False,
        params={
            "response_type": "code",
            "client_id": partner["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid",
        },
    )
    assert query_of(response.headers["location"])["error"] == "invalid_request"  # no challenge at all


async def test_wrong_or_missing_verifier_is_refused(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    wrong = await kit.tokens(
        partner["client_id"], partner["client_secret"], query["code"], verifier[:-1] + "A"
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    missing = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], "")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"


async def test_unknown_parameters_ignored_nonce_optional_state_echoed(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(
        partner["client_id"], ZHANG.mobile, nonce="", display="page", foo="bar", state="exact state/値"
    )
    assert query["state"] == "exact state/値" and query["iss"] == ISSUER
    body = (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()
    assert "nonce" not in claims_of(body["id_token"])


async def test_prompt_none_without_session_is_login_required(kit: Kit) -> None:
    partner = await kit.register()
    response, _ = await kit.authorize(partner["client_id"], prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_sso_then_prompt_none_login_and_max_age(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    first = claims_of(
        (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()[
            "id_token"
        ]
    )
    # Signed in and consented: prompt=none answers with a code at once.
    response, _ = await kit.authorize(partner["client_id"], prompt="none")
    assert "code" in query_of(response.headers["location"])
    # prompt=login and max_age=0 both show the login page again.
    for extra in ({"prompt": "login"}, {"max_age": "0"}):
        response, _ = await kit.authorize(partner["client_id"], **extra)
        page = await kit.follow(response)
        assert page.status_code == 200 and "/send-code" in page.text, extra
    response, verifier = await kit.authorize(partner["client_id"], prompt="login")
    page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
    query = query_of(page.headers["location"])
    again = claims_of(
        (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()[
            "id_token"
        ]
    )
    # The same person re-authenticating (OIDC Core §3.1.2.1): a new auth_time in the same SSO session.
    assert again["auth_time"] >= first["auth_time"] and again["sid"] == first["sid"]
    # prompt=consent asks again even though consent was given.
    response, _ = await kit.authorize(partner["client_id"], prompt="consent")
    assert "/consent" in (await kit.follow(response)).text


async def test_login_hint_and_ui_locales(kit: Kit) -> None:
    partner = await kit.register()
    response, _ = await kit.authorize(partner["client_id"], login_hint=ZHANG.mobile, ui_locales="en-GB zh")
    page = await kit.follow(response)
    assert (
        f'value="{ZHANG.mobile}"' in page.text
        and "Sign in to Citizen" in page.text
        and 'lang="en"' in page.text
    )
    response, _ = await kit.authorize(partner["client_id"])
    assert "登录市民通" in (await kit.follow(response)).text


async def test_id_token_hint_for_another_person_forces_login(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    await kit.flows.register(LI.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    zhang_token = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()["id_token"]
    kit.client.cookies.clear()
    await kit.sign_in(partner["client_id"], LI.mobile)  # the browser is now Li's
    response, _ = await kit.authorize(partner["client_id"], id_token_hint=zhang_token, prompt="none")
    assert query_of(response.headers["location"])["error"] == "login_required"
    header, _payload, signature = zhang_token.split(".")
    forged = ".".join([header, base64.urlsafe_b64encode(b'{"sub":"x"}').rstrip(b"=").decode(), signature])
    response, _ = await kit.authorize(partner["client_id"], id_token_hint=forged)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


async def test_acr_values_step_up_to_l3_with_totp(kit: Kit) -> None:
    session = await kit.flows.verified(ZHANG)
    secret, _ = await kit.flows.enable_totp(session["token"])
    partner = await kit.register()
    response, verifier = await kit.authorize(partner["client_id"], acr_values="loa3")
    page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
    assert page.status_code == 200 and "/totp" in page.text  # step-up after the first factor
    page = await kit.totp(page, secret)
    if "/consent" in page.text:
        page = await kit.consent(page)
    query = query_of(page.headers["location"])
    id_token = claims_of(
        (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()[
            "id_token"
        ]
    )
    assert id_token["acr"] == "loa3" and "otp" in id_token["amr"]
    assert id_token["auth_time"] <= int(time.time())


async def test_acr_unreachable_is_met_only_when_not_essential(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)  # L1: cannot reach loa2 by signing in
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, acr_values="loa2")
    id_token = claims_of(
        (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()[
            "id_token"
        ]
    )
    assert id_token["acr"] == "loa1"  # voluntary: the client sees what was reached
    essential = '{"id_token": {"acr": {"essential": true, "values": ["loa2"]}}}'
    response, _ = await kit.authorize(partner["client_id"], claims=essential)
    assert query_of(response.headers["location"])["error"] == "unmet_authentication_requirements"


_MALFORMED_CLAIMS = (
    "[]",
    "null",
    '"userinfo"',
    "{not json",
    '{"userinfo": 5}',
    '{"userinfo": []}',
    '{"userinfo": {"name": 5}}',
    '{"userinfo": {"name": {"essential": "yes"}}}',
    '{"userinfo": {"name": {"values": "x"}}}',
    '{"id_token": {"acr": {"values": 5}}}',
    '{"id_token": {"acr": {"values": [2]}}}',
    '{"id_token": {"acr": {"value": 2}}}',
    '{"id_token": {"acr": {"essential": 1, "values": ["loa2"]}}}',
    '{"userinfo": {"name": {"value": ' + "[" * 2000 + "]" * 2000 + "}}}",  # nested too deeply
    '{"userinfo": {"name": {"value": "' + "x" * 5000 + '"}}}',  # too long
)


@pytest.mark.parametrize("claims", _MALFORMED_CLAIMS)
async def test_malformed_claims_parameter_is_invalid_request(kit: Kit, claims: str) -> None:
    """Core §5.5: ``claims`` is a JSON object of ``userinfo`` / ``id_token`` objects whose claims
    are null or an object (``essential`` boolean, ``values`` an array; ``acr`` values strings).
    Anything else goes back as invalid_request, at the authorization endpoint and at PAR."""
    partner = await kit.register()
    response, _ = await kit.authorize(partner["client_id"], claims=claims)
    assert response.status_code in (302, 303), response.text
    query = query_of(response.headers["location"])
    assert query["error"] == "invalid_request" and "claims" in query["error_description"]
    assert query["iss"] == ISSUER
    pushed = await kit.client.post(
        "/oidc/par",
        data={
            "response_type": "code",
            "client_id": partner["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "claims": claims,
        },
        headers=basic(partner["client_id"], partner["client_secret"]),
    )
    assert pushed.status_code == 400 and pushed.json()["error"] == "invalid_request"
