"""Checklist 6 (token endpoint) and the issue's bad inputs: a code used twice (sequentially, which
revokes what it issued, and in parallel: exactly one success), code bound to client and
redirect_uri, private_key_jwt with a malformed JWT, a wrong aud, an expired assertion and a replayed
jti; RFC 6749 error JSON everywhere, never a 500."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.identity.conftest import API, ZHANG, bearer
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic

TOKEN = "/oidc/token"


def _oauth_error(response: Any, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["error"] == error, body
    assert not any(c in body.get("error_description", "") for c in "\r\n\t")


async def test_code_is_single_use_and_reuse_revokes_what_it_issued(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    first = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    userinfo = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 200
    second = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    _oauth_error(second, 400, "invalid_grant")
    # Everything issued from the code stops working (RFC 6749 §4.1.2).
    userinfo = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401 and "invalid_token" in userinfo.headers["www-authenticate"]
    refreshed = await kit.client.post(
        TOKEN,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(partner["client_id"], partner["client_secret"]),
    )
    _oauth_error(refreshed, 400, "invalid_grant")


async def test_parallel_redemption_of_one_code_succeeds_once(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    results = await asyncio.gather(
        *(
            kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in results) == [200] + [400] * 7


async def test_code_is_bound_to_client_and_redirect_uri(kit: Kit) -> None:
    """(Its sixty-second life: ``test_code_record_lives_at_most_sixty_seconds``.)"""
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    other = await kit.register(name="Partner B")
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    _oauth_error(
        await kit.tokens(other["client_id"], other["client_secret"], query["code"], verifier),
        400,
        "invalid_grant",
    )
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    bad_redirect = await kit.tokens(
        partner["client_id"],
        partner["client_secret"],
        query["code"],
        verifier,
        redirect_uri="https://partner-a.example/other",
    )
    _oauth_error(bad_redirect, 400, "invalid_grant")


async def test_code_record_lives_at_most_sixty_seconds(kit: Kit, redis_client: Any) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    response, _ = await kit.authorize(partner["client_id"])
    page = await kit.login_sms(await kit.follow(response), ZHANG.mobile)
    await kit.consent(page)
    keys = [k async for k in redis_client.scan_iter("oidc:code:*")]
    ttls = [await redis_client.ttl(k) for k in keys]
    assert ttls and all(0 < t <= 60 for t in ttls)


async def test_client_authentication_failures(kit: Kit) -> None:
    partner = await kit.register(grant_types=["client_credentials"], scopes=["profile"])
    cid, secret = partner["client_id"], partner["client_secret"]
    form = {"grant_type": "client_credentials"}
    _oauth_error(
        await kit.client.post(TOKEN, data=form, headers=basic(cid, secret + "x")), 401, "invalid_client"
    )
    _oauth_error(
        await kit.client.post(TOKEN, data=form, headers=basic("nobody", secret)), 401, "invalid_client"
    )
    _oauth_error(await kit.client.post(TOKEN, data=form), 401, "invalid_client")
    # client_secret_post is refused for a client registered for client_secret_basic
    posted = await kit.client.post(TOKEN, data={**form, "client_id": cid, "client_secret": secret})
    _oauth_error(posted, 401, "invalid_client")
    ok = await kit.client.post(TOKEN, data=form, headers=basic(cid, secret))
    assert ok.status_code == 200 and "refresh_token" not in ok.json() and ok.json()["scope"] == "profile"
    _oauth_error(
        await kit.client.post(
            TOKEN,
            data={"grant_type": "password", "username": "u", "password": "p"},
            headers=basic(cid, secret),
        ),
        400,
        "unsupported_grant_type",
    )
    _oauth_error(
        await kit.client.post(
            TOKEN, data={"grant_type": "authorization_code", "code": "x"}, headers=basic(cid, secret)
        ),
        400,
        "unauthorized_client",
    )
    _oauth_error(
        await kit.client.post(TOKEN, data={**form, "scope": "phone"}, headers=basic(cid, secret)),
        400,
        "invalid_scope",
    )
    _oauth_error(
        await kit.client.post(
            TOKEN,
            content=b'{"grant_type":"client_credentials"}',
            headers={**basic(cid, secret), "content-type": "application/json"},
        ),
        400,
        "invalid_request",
    )
    _oauth_error(
        await kit.client.post(
            TOKEN,
            content=b"grant_type=a&grant_type=b",
            headers={**basic(cid, secret), "content-type": "application/x-www-form-urlencoded"},
        ),
        400,
        "invalid_request",
    )
    post_client = await kit.register(
        name="Poster",
        grant_types=["client_credentials"],
        scopes=["profile"],
        auth_method="client_secret_post",
    )
    ok = await kit.client.post(
        TOKEN,
        data={**form, "client_id": post_client["client_id"], "client_secret": post_client["client_secret"]},
    )
    assert ok.status_code == 200


async def test_private_key_jwt(kit: Kit) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "alg": "ES256", "use": "sig"}
    cid = await kit.register_key_client(public)

    def assertion(**changes: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": cid,
            "sub": cid,
            "aud": ISSUER,  # FAPI 2.0 Security Profile §5.3.2.1: the issuer only
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_urlsafe(12),
            **changes,
        }
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    call = kit.assertion_grant
    good = assertion()
    assert (await call(good)).status_code == 200
    _oauth_error(await call(good), 401, "invalid_client")  # replayed jti
    assert (await call(assertion())).status_code == 200  # a fresh jti
    _oauth_error(await call(assertion(aud="https://elsewhere.example/token")), 401, "invalid_client")
    _oauth_error(await call(assertion(exp=int(time.time()) - 300)), 401, "invalid_client")  # expired
    _oauth_error(await call(assertion(exp=int(time.time()) + 3600)), 401, "invalid_client")  # too long-lived
    _oauth_error(await call(assertion(jti=None)), 401, "invalid_client")
    _oauth_error(await call(assertion(sub="someone-else")), 401, "invalid_client")
    _oauth_error(await call("not.a.jwt"), 401, "invalid_client")  # malformed
    _oauth_error(await call("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."), 401, "invalid_client")
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    forged = jwt.encode(
        {"iss": cid, "sub": cid, "aud": ISSUER, "iat": now, "exp": now + 60, "jti": "f"},
        other,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    _oauth_error(await call(forged), 401, "invalid_client")
    hs = jwt.encode(
        {"iss": cid, "sub": cid, "aud": ISSUER, "exp": now + 60, "jti": "h"}, "secret" * 6, algorithm="HS256"
    )
    _oauth_error(await call(hs), 401, "invalid_client")


async def test_private_key_jwt_algorithms_and_rsa_key_size(kit: Kit) -> None:
    """FAPI 2.0 §5.4 (identity-oidc.md checklist): PS256, ES256 and EdDSA assertions only, an RS256
    one refused even with a registered key that fits it; RSA client keys of 2048 bits or more."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "r1", "use": "sig"}
    cid = await kit.register_key_client(public)

    async def call(alg: str) -> Any:
        now = int(time.time())
        claims = {
            "iss": cid,
            "sub": cid,
            "aud": ISSUER,
            "iat": now,
            "exp": now + 60,
            "jti": secrets.token_hex(8),
        }
        return await kit.assertion_grant(jwt.encode(claims, key, algorithm=alg, headers={"kid": "r1"}))

    assert (await call("PS256")).status_code == 200
    _oauth_error(await call("RS256"), 401, "invalid_client")
    discovery = (await kit.client.get("/.well-known/openid-configuration")).json()
    assert "RS256" not in discovery["token_endpoint_auth_signing_alg_values_supported"]

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = RSAAlgorithm.to_jwk(small.public_key(), as_dict=True) | {"kid": "r2"}
    refused = await kit.client.post(
        f"{API}/admin/oidc-clients",
        json={
            "name": "Weak key",
            "redirect_uris": [REDIRECT],
            "scopes": ["profile"],
            "auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "jwks": {"keys": [weak]},
        },
        headers=bearer(await kit.operator()),
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["rule"] == "key_size"


async def test_parallel_assertions_with_one_jti_succeed_once(kit: Kit) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1"}
    partner = await kit.register(
        auth_method="private_key_jwt",
        jwks={"keys": [public]},
        grant_types=["client_credentials"],
        scopes=["profile"],
    )
    now, cid = int(time.time()), partner["client_id"]
    token = jwt.encode(
        {"iss": cid, "sub": cid, "aud": ISSUER, "iat": now, "exp": now + 60, "jti": "once"},
        key,
        algorithm="ES256",
        headers={"kid": "k1"},
    )
    results = await asyncio.gather(
        *(
            kit.client.post(
                TOKEN,
                data={
                    "grant_type": "client_credentials",
                    "client_assertion": token,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                },
            )
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in results) == [200] + [401] * 5


async def test_form_endpoints_refuse_what_is_not_a_form_post(kit: Kit) -> None:
    """The token, introspection and revocation endpoints (plain ASGI handlers): 405 with Allow for
    other methods, and invalid_request for a body that is not UTF-8 or too large; never a 500."""
    partner = await kit.register(grant_types=["client_credentials"], scopes=["profile"])
    auth = basic(partner["client_id"], partner["client_secret"])
    form = {**auth, "content-type": "application/x-www-form-urlencoded"}
    for path in (TOKEN, "/oidc/introspect", "/oidc/revoke"):
        answer = await kit.client.get(path)
        assert answer.status_code == 405 and answer.headers["allow"] == "POST", answer.text
        assert answer.json()["error"] == "invalid_request"
        _oauth_error(
            await kit.client.post(path, content=b"token=\xff\xfe", headers=form), 400, "invalid_request"
        )
        big = b"grant_type=client_credentials&pad=" + b"x" * 70_000
        _oauth_error(await kit.client.post(path, content=big, headers=form), 400, "invalid_request")
    unauthenticated = await kit.client.post(TOKEN, data={"grant_type": "client_credentials"})
    _oauth_error(unauthenticated, 401, "invalid_client")
    assert unauthenticated.headers["www-authenticate"].startswith('Basic realm="citizen"')
