"""Token exchange for a person acting for an organisation (``act``, only roles held), the API's
bearer guard accepting the provider's access tokens (audience, scope, pinned algorithm), and the
client registration API (security_admin only, secrets shown once and stored hashed)."""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlencode

import asyncpg
import jwt
from litestar import get
from litestar.di import NamedDependency

from backend.keyring import Keyring
from identity.auth import Principal, requires_org_role
from identity.oidc.jose import sign
from identity.oidc.resolver import requires_scope
from identity.oidc.wiring import key_store
from tests.identity.conftest import API, LI, ZHANG, bearer
from tests.identity.test_organisations import _company_with_agent
from tests.oidc.conftest import ISSUER, Kit, basic, claims_of

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


@get(
    "/probe/oidc/cards/{organisation_id:str}",
    operation_id="ProbeOidcCards",
    guards=[requires_org_role("card_admin", path_param="organisation_id")],
)
async def probe_org(principal: NamedDependency[Principal]) -> dict[str, Any]:
    return {"acting_for": str(principal.acting_for), "by": str(principal.account_id)}


@get("/probe/oidc/phone", operation_id="ProbeOidcPhone", guards=[requires_scope("phone")])
async def probe_scope(principal: NamedDependency[Principal]) -> dict[str, Any]:
    return {"scopes": sorted(principal.scopes or [])}


async def test_token_exchange_acting_for_an_organisation(kit: Kit) -> None:
    kit.client.app.register(probe_org)
    org_id, boss, _agent, appointment = await _company_with_agent(kit.client, kit.flows)
    partner = await kit.register(grant_types=["authorization_code", "refresh_token", EXCHANGE])
    # The person consents to the partner acting for their organisations (the organisations scope).
    query, verifier = await kit.sign_in(partner["client_id"], LI.mobile, scope="openid organisations")
    tokens = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()
    person_sub = claims_of(tokens["id_token"])["sub"]
    auth = basic(partner["client_id"], partner["client_secret"])

    async def exchange(subject: str | None = None, **extra: str) -> Any:
        return await kit.client.post(
            "/oidc/token",
            headers=auth,
            data={
                "grant_type": EXCHANGE,
                "subject_token": subject or tokens["access_token"],
                "subject_token_type": AT,
                **extra,
            },
        )

    done = await exchange(organisation=org_id, scope="card_admin")
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["issued_token_type"] == AT and body["scope"] == "card_admin"
    claims = claims_of(body["access_token"])
    assert (
        claims["act"] == {"sub": person_sub} and claims["org"] == org_id and claims["roles"] == ["card_admin"]
    )
    assert claims["sub"] != person_sub  # the organisation (its credit code) is the subject
    assert claims["aud"] == [partner["client_id"]]  # a partner's token: never the API's audience
    # The API refuses it: a partner is not first-party and its token holds no api scope.
    assert (
        await kit.client.get(f"/probe/oidc/cards/{org_id}", headers=bearer(body["access_token"]))
    ).status_code == 401
    # Only roles held; no role at all -> refused.
    assert (await exchange(organisation=org_id, scope="payments")).json()["error"] == "invalid_scope"
    unknown = await exchange(organisation="00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    assert (await exchange(subject_token_type="x")).json()["error"] == "invalid_request"
    assert (await exchange("bad.token.here", organisation=org_id)).json()["error"] == "invalid_grant"
    # A token without the organisations scope (the person did not consent to that) is not exchanged.
    query, verifier = await kit.sign_in(partner["client_id"], LI.mobile, scope="openid profile")
    plain = (await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)).json()
    refused = await exchange(plain["access_token"], organisation=org_id, scope="card_admin")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope", refused.text
    # No membership oracle: an organisation where the person holds no role (any more) is answered
    # exactly like one that does not exist.
    removed = await kit.client.delete(
        f"{API}/organisations/{org_id}/agents/{appointment}", headers=bearer(boss["token"])
    )
    assert removed.status_code == 200, removed.text
    gone = await exchange(organisation=org_id)
    assert gone.status_code == unknown.status_code and gone.json() == unknown.json()


async def test_api_bearer_guard_audience_scope_and_pinned_algorithm(kit: Kit) -> None:
    kit.client.app.register(probe_scope)
    await kit.flows.register(ZHANG.mobile)
    app_client = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=["cn.city.app:/callback"],
        scopes=["openid", "api", "phone"],
    )
    partner = await kit.register()
    query, verifier = await kit.sign_in(
        app_client["client_id"], ZHANG.mobile, scope="openid api", redirect_uri="cn.city.app:/callback"
    )
    tokens = (
        await kit.tokens(
            app_client["client_id"], None, query["code"], verifier, redirect_uri="cn.city.app:/callback"
        )
    ).json()
    me = await kit.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200, me.text  # the provider's access token works at the API
    assert (
        await kit.client.get("/probe/oidc/phone", headers=bearer(tokens["access_token"]))
    ).status_code == 403
    # A partner's token is not for the API (wrong audience).
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    partner_tokens = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()
    assert (
        await kit.client.get(f"{API}/me", headers=bearer(partner_tokens["access_token"]))
    ).status_code == 401
    # The ID token is not an access token; an HS256 token with the public key as secret is refused.
    assert (await kit.client.get(f"{API}/me", headers=bearer(tokens["id_token"]))).status_code == 401
    claims = claims_of(tokens["access_token"])
    forged = jwt.encode(
        {**claims, "exp": int(time.time()) + 600},
        "x" * 32,
        algorithm="HS256",
        headers={"typ": "at+jwt", "kid": jwt.get_unverified_header(tokens["access_token"])["kid"]},
    )
    assert (await kit.client.get(f"{API}/me", headers=bearer(forged))).status_code == 401
    # Revoked (RFC 7009) -> refused at once.
    revoked = await kit.client.post(
        "/oidc/revoke", data={"token": tokens["access_token"], "client_id": app_client["client_id"]}
    )
    assert revoked.status_code == 200
    assert (await kit.client.get(f"{API}/me", headers=bearer(tokens["access_token"]))).status_code == 401


async def test_the_api_audience_needs_the_api_scope(
    kit: Kit, db: Any, database_url: str, keyring: Keyring
) -> None:
    """A token reaches the API only with the api scope, granted to a first-party client: no client
    registers the API's audience, a stored row that lists it is not trusted, and the guard refuses
    a token naming the API whose scope (or grant) lacks api."""
    await kit.flows.verified(ZHANG)
    api = ISSUER + "/api"
    headers = bearer(await kit.operator())
    for first_party in (False, True):
        response = await kit.client.post(
            f"{API}/admin/oidc-clients",
            json={
                "name": "Partner X",
                "redirect_uris": ["https://partner-x.example/cb"],
                "audiences": [api],
                "first_party": first_party,
            },
            headers=headers,
        )
        assert response.status_code == 422, response.text
    # A row stored before that rule: the partner's tokens still do not name the API.
    partner = await kit.register()
    await db.execute(
        "UPDATE identity.oidc_clients SET audiences = $2 WHERE client_id = $1", partner["client_id"], [api]
    )
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, scope="openid")
    tokens = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()
    assert api not in claims_of(tokens["access_token"])["aud"]
    for path in ("/me", "/me/export"):
        answer = await kit.client.get(API + path, headers=bearer(tokens["access_token"]))
        assert answer.status_code == 401, answer.text
    # The guard itself: a token naming the API is refused unless it and its grant hold api.
    app_client = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=["cn.city.app:/callback"],
        scopes=["openid", "api", "phone"],
    )
    genuine: dict[str, str] = {}  # granted scope -> the access token the provider issued for it
    pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        keys = key_store(pool, keyring, kit.settings.oidc)
        await keys.load()
        for granted, minted, status in (
            ("openid api", "openid api", 200),  # the control: the same forging, all in order
            ("openid api", "openid", 401),
            ("openid", "openid api", 401),
        ):
            query, verifier = await kit.sign_in(
                app_client["client_id"], ZHANG.mobile, scope=granted, redirect_uri="cn.city.app:/callback"
            )
            issued = (
                await kit.tokens(
                    app_client["client_id"],
                    None,
                    query["code"],
                    verifier,
                    redirect_uri="cn.city.app:/callback",
                )
            ).json()
            genuine[granted] = issued["access_token"]
            claims = claims_of(issued["access_token"])
            assert (api in claims["aud"]) == ("api" in granted.split())
            # Signed with the provider's own key, on the live grant: only aud and scope differ.
            forged = await sign(
                keys,
                {**claims, "aud": [api], "scope": minted, "jti": secrets.token_urlsafe(16)},
                alg=kit.settings.oidc.signing_alg,
                typ="at+jwt",
            )
            answer = await kit.client.get(f"{API}/me", headers=bearer(forged))
            assert answer.status_code == status, (granted, minted, answer.text)
    finally:
        await pool.close()
    # The provider's own token for a grant without api, unforged, is refused too.
    assert (await kit.client.get(f"{API}/me", headers=bearer(genuine["openid"]))).status_code == 401


async def test_client_registration_api(kit: Kit, db: Any) -> None:
    created = await kit.register(
        contacts=["ops@partner-a.example"], logo_uri="https://partner-a.example/logo.png"
    )
    secret = created["client_secret"]
    assert secret and created["contacts"] == ["ops@partner-a.example"]
    headers = bearer(await kit.operator())
    shown = (await kit.client.get(f"{API}/admin/oidc-clients/{created['client_id']}", headers=headers)).json()
    assert shown["client_secret"] is None
    stored = await db.fetchval(
        "SELECT secret_hash FROM identity.oidc_clients WHERE client_id = $1", created["client_id"]
    )
    assert secret.encode() not in bytes(stored) and len(stored) == 32
    for bad in (
        {"redirect_uris": ["https://*.partner.example/cb"]},
        {"redirect_uris": ["http://partner.example/cb"]},
        {"redirect_uris": ["https://partner.example/cb#x"]},
        {"grant_types": ["password"]},
        {"grant_types": ["implicit"]},
        {"scopes": ["admin"]},
        {"client_type": "public", "auth_method": "client_secret_basic"},
    ):
        response = await kit.client.post(
            f"{API}/admin/oidc-clients", json={"name": "Bad", **bad}, headers=headers
        )
        assert response.status_code == 422, (bad, response.text)
    citizen = await kit.flows.register(ZHANG.mobile)
    denied = await kit.client.post(
        f"{API}/admin/oidc-clients", json={"name": "X"}, headers=bearer(citizen["token"])
    )
    assert denied.status_code == 403
    rotated = (
        await kit.client.post(f"{API}/admin/oidc-clients/{created['client_id']}/secret", headers=headers)
    ).json()
    assert rotated["client_secret"] and rotated["client_secret"] != secret
    old = await kit.client.post(
        "/oidc/token", data={"grant_type": "client_credentials"}, headers=basic(created["client_id"], secret)
    )
    assert old.status_code == 401
    disabled = await kit.client.post(
        f"{API}/admin/oidc-clients/{created['client_id']}/disable", headers=headers
    )
    assert disabled.status_code == 200
    response, _ = await kit.authorize(created["client_id"])
    assert response.status_code == 400 and "location" not in response.headers


async def test_token_exchange_audience_for_the_api(kit: Kit) -> None:
    """RFC 8693 audience/resource: the first-party page asks for the API's audience, and the API's
    bearer guard takes the organisation's token; an audience the client may not name is
    invalid_target; without one, the token goes where the person's token went. The API's audience
    needs the api scope in the person's token."""
    kit.client.app.register(probe_org)
    org_id, _boss, agent, _ = await _company_with_agent(kit.client, kit.flows)
    api = ISSUER + "/api"
    web = await kit.register(
        name="City web page",
        first_party=True,
        grant_types=["authorization_code", "refresh_token", EXCHANGE],
        scopes=["openid", "profile", "organisations", "api"],
    )
    query, verifier = await kit.sign_in(web["client_id"], LI.mobile, scope="openid organisations")
    tokens = (await kit.tokens(web["client_id"], web["client_secret"], query["code"], verifier)).json()
    assert api not in claims_of(tokens["access_token"])["aud"]  # the person's token was not for the API
    auth = basic(web["client_id"], web["client_secret"])

    async def exchange(*extra: tuple[str, str]) -> Any:
        form = [
            ("grant_type", EXCHANGE),
            ("subject_token", tokens["access_token"]),
            ("subject_token_type", AT),
            ("organisation", org_id),
            ("scope", "card_admin"),
            *extra,
        ]
        return await kit.client.post(
            "/oidc/token",
            headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form),
        )

    default = (await exchange()).json()
    assert claims_of(default["access_token"])["aud"] == [web["client_id"]]
    probe = f"/probe/oidc/cards/{org_id}"
    assert (await kit.client.get(probe, headers=bearer(default["access_token"]))).status_code == 401
    # Without the api scope in the person's token, no token for the API.
    for name in ("audience", "resource"):
        answer = await exchange((name, api))
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_scope", answer.text
    query, verifier = await kit.sign_in(web["client_id"], LI.mobile, scope="openid organisations api")
    tokens = (await kit.tokens(web["client_id"], web["client_secret"], query["code"], verifier)).json()
    assert api in claims_of(tokens["access_token"])["aud"]
    for name in ("audience", "resource"):
        done = await exchange((name, api))
        assert done.status_code == 200, done.text
        assert done.json()["scope"] == "api card_admin"
        token = done.json()["access_token"]
        assert claims_of(token)["aud"] == [api]
        answer = await kit.client.get(probe, headers=bearer(token))
        assert answer.status_code == 200
        assert answer.json() == {"acting_for": org_id, "by": agent["account_id"]}
        other_org = "11111111-1111-1111-1111-111111111111"
        assert (
            await kit.client.get(f"/probe/oidc/cards/{other_org}", headers=bearer(token))
        ).status_code == 403
    both = await exchange(("audience", api), ("audience", web["client_id"]))
    assert claims_of(both.json()["access_token"])["aud"] == [api, web["client_id"]]
    for target in (("audience", "https://elsewhere.example/api"), ("resource", ISSUER + "/other")):
        answer = await exchange(target)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_target", answer.text
    # A partner that is not first-party may not name the API, even holding (and granted) the api scope.
    partner = await kit.register(
        grant_types=["authorization_code", EXCHANGE], scopes=["openid", "organisations", "api"]
    )
    query, verifier = await kit.sign_in(partner["client_id"], LI.mobile, scope="openid organisations api")
    theirs = (
        await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    ).json()
    refused = await kit.client.post(
        "/oidc/token",
        headers=basic(partner["client_id"], partner["client_secret"]),
        data={
            "grant_type": EXCHANGE,
            "subject_token": theirs["access_token"],
            "subject_token_type": AT,
            "organisation": org_id,
            "audience": api,
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target", refused.text
    assert ISSUER + "/api" not in claims_of(theirs["access_token"])["aud"]
