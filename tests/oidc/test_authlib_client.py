"""An independent client run: authlib's ``AsyncOAuth2Client`` against the app served by uvicorn.

A partner registered through the admin API signs a citizen in with the code flow (PKCE S256),
validates the ID token (authlib's ``CodeIDToken`` rules: iss, aud, exp, iat, nonce, at_hash,
signature from the JWKS), refreshes, calls UserInfo, and logs out; the back-channel logout token
reaches a real HTTP receiver. A second partner then gets in without a second login.
"""

from __future__ import annotations

import re
import secrets
import warnings
from typing import Any

import httpx
import jwt
from authlib.deprecate import AuthlibDeprecationWarning

from backend.settings import Settings
from integrations.simulators.control import SimulatorControl
from tests.identity.conftest import ZHANG
from tests.oidc.receiver import receiver
from tests.oidc.server import running_server

with warnings.catch_warnings():  # authlib 1.9 warns when it falls back from httpx2 to httpx
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oidc.core import CodeIDToken

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_BASE = re.compile(r'action="(/oidc/interaction/[^"/]+)/')
REDIRECT = "https://partner-a.example/callback"


async def _browser_login(browser: httpx.AsyncClient, url: str, mobile: str | None) -> str:
    """Follow the provider's pages like a person would; returns the redirect to the client."""
    response = await browser.get(url)
    while True:
        if response.status_code == 303:
            location = response.headers["location"]
            if not location.startswith("/"):
                return location
            response = await browser.get(location)
            continue
        assert response.status_code == 200, response.text
        csrf, base = _CSRF.search(response.text), _BASE.search(response.text)
        assert csrf and base
        if "/send-code" in response.text:
            assert mobile is not None, "a login page where none was expected"
            await browser.post(f"{base.group(1)}/send-code", data={"csrf": csrf.group(1), "mobile": mobile})
            sms = (
                await browser.get("/api/v1/identity/dev/sms", params={"mobile": mobile, "limit": 1})
            ).json()
            code = re.search(r"(\d{6})", sms[0]["text"])
            assert code
            response = await browser.post(
                f"{base.group(1)}/login",
                data={"csrf": csrf.group(1), "method": "sms", "mobile": mobile, "code": code.group(1)},
            )
        else:
            response = await browser.post(
                f"{base.group(1)}/consent", data={"csrf": csrf.group(1), "decision": "allow"}
            )


async def _register(api: httpx.AsyncClient, operator: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Partner",
        "redirect_uris": [REDIRECT],
        "scopes": ["openid", "profile", "phone"],
        **fields,
    }
    response = await api.post(
        "/api/v1/identity/admin/oidc-clients", json=body, headers={"Authorization": f"Bearer {operator}"}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_authlib_client_full_run(settings: Settings, upstreams: SimulatorControl, db: Any) -> None:
    from identity.admin.operators import create_operator
    from identity.passwords import PasswordHasher

    await create_operator(
        db,
        PasswordHasher(settings.identity),
        username="sec-admin",
        display_name="S",
        roles=["security_admin"],
        password="operator pass 1",
    )
    with running_server(settings, upstreams.urls) as base, receiver() as rp:
        async with httpx.AsyncClient(base_url=base) as browser:
            operator = (
                await browser.post(
                    "/api/v1/identity/operator-sessions",
                    json={"username": "sec-admin", "password": "operator pass 1"},
                )
            ).json()
            code = await browser.post(
                "/api/v1/identity/codes", json={"mobile": ZHANG.mobile, "purpose": "register"}
            )
            assert code.status_code == 202
            sms = (await browser.get("/api/v1/identity/dev/sms", params={"mobile": ZHANG.mobile})).json()
            otp = re.search(r"(\d{6})", sms[0]["text"])
            assert otp
            registered = await browser.post(
                "/api/v1/identity/registrations", json={"mobile": ZHANG.mobile, "code": otp.group(1)}
            )
            assert registered.status_code == 201
            partner_a = await _register(browser, operator["token"], backchannel_logout_uri=rp.url)
            partner_b = await _register(
                browser, operator["token"], name="Partner B", backchannel_logout_uri=rp.url
            )
            meta = (await browser.get("/.well-known/openid-configuration")).json()
            assert meta["issuer"] == base
            jwks = jwt.PyJWKSet.from_dict((await browser.get("/oidc/jwks")).json())

            client = AsyncOAuth2Client(
                partner_a["client_id"],
                partner_a["client_secret"],
                scope="openid profile phone",
                redirect_uri=REDIRECT,
                code_challenge_method="S256",
            )
            async with client:
                verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
                url, state = client.create_authorization_url(
                    meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
                )
                location = await _browser_login(browser, url, ZHANG.mobile)
                assert f"state={state}" in location and "iss=" in location
                token = await client.fetch_token(
                    meta["token_endpoint"], authorization_response=location, code_verifier=verifier
                )
                header = jwt.get_unverified_header(token["id_token"])
                payload = jwt.decode(
                    token["id_token"],
                    jwks[header["kid"]].key,
                    algorithms=[header["alg"]],
                    audience=partner_a["client_id"],
                    issuer=base,
                )
                claims = CodeIDToken(
                    payload,
                    header,
                    options={
                        "iss": {"essential": True, "value": base},
                        "aud": {"essential": True, "value": partner_a["client_id"]},
                    },
                    params={"nonce": nonce, "access_token": token["access_token"]},
                )
                claims.validate(leeway=5)
                refreshed = await client.refresh_token(
                    meta["token_endpoint"], refresh_token=token["refresh_token"]
                )
                assert refreshed["refresh_token"] != token["refresh_token"]
                userinfo = (await client.get(meta["userinfo_endpoint"])).json()
                assert userinfo["sub"] == payload["sub"] and userinfo["phone_number"] == "+86" + ZHANG.mobile

            # The second partner: no login page (SSO), only consent.
            client_b = AsyncOAuth2Client(
                partner_b["client_id"],
                partner_b["client_secret"],
                scope="openid",
                redirect_uri=REDIRECT,
                code_challenge_method="S256",
            )
            async with client_b:
                verifier = secrets.token_urlsafe(48)
                url, _ = client_b.create_authorization_url(
                    meta["authorization_endpoint"], code_verifier=verifier
                )
                location = await _browser_login(browser, url, None)
                token_b = await client_b.fetch_token(
                    meta["token_endpoint"], authorization_response=location, code_verifier=verifier
                )
                assert (
                    jwt.decode(token_b["id_token"], options={"verify_signature": False})["sid"]
                    == payload["sid"]
                )

            logout = await browser.get(
                meta["end_session_endpoint"], params={"id_token_hint": token["id_token"]}
            )
            assert logout.status_code == 200
        assert len(rp.tokens) == 2
        for logout_token in rp.tokens:
            header = jwt.get_unverified_header(logout_token)
            decoded = jwt.decode(
                logout_token,
                jwks[header["kid"]].key,
                algorithms=[header["alg"]],
                audience=[partner_a["client_id"], partner_b["client_id"]],
                issuer=base,
            )
            assert (
                header["typ"] == "logout+jwt" and decoded["sid"] == payload["sid"] and "nonce" not in decoded
            )
