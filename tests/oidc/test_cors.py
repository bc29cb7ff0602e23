"""CORS on the provider's browser-facing endpoints (identity/oidc/cors.py): the public documents
for any origin; token, userinfo and revocation for the origins of the client the request is for
(preflights: of any active client), errors included; nothing on the other endpoints, and never
``Access-Control-Allow-Credentials``."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from httpx import Response
from jwt.algorithms import ECAlgorithm
from redis.asyncio import Redis

from identity.oidc.clients import ClientStore
from identity.oidc.cors import ORIGINS_KEY, ORIGINS_TTL, CorsPolicy
from tests.identity.conftest import ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic

APP_A = "https://partner-a.example"  # the origin of the conftest's REDIRECT
REDIRECT_B = "https://partner-b.example/callback"
APP_B = "https://partner-b.example"
SPA_C = "https://spa-c.example"  # registered as client C's web origin
EVIL = "https://evil.example"


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, dpop",
    }


def _allows(response: Response, origin: str) -> None:
    assert response.headers.get("access-control-allow-origin") == origin, dict(response.headers)
    assert "Origin" in response.headers.get("vary", "")
    assert "access-control-allow-credentials" not in response.headers


def _no_cors(response: Response) -> None:
    assert not [h for h in response.headers if h.lower().startswith("access-control-")], dict(
        response.headers
    )


async def _public(kit: Kit, name: str, **fields: Any) -> str:
    created = await kit.register(name=name, client_type="public", auth_method="none", **fields)
    client_id: str = created["client_id"]
    return client_id


async def _tokens(kit: Kit, client_id: str, origin: str | None, redirect_uri: str = REDIRECT) -> Response:
    """Sign ZHANG in for ``client_id`` and redeem the code from a page on ``origin`` (None: a server)."""
    query, verifier = await kit.sign_in(client_id, ZHANG.mobile, redirect_uri=redirect_uri)
    return await kit.client.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
        headers={"Origin": origin} if origin else {},
    )


@pytest.mark.parametrize(
    ("path", "method", "methods"),
    [
        ("/oidc/token", "POST", "POST"),
        ("/oidc/revoke", "POST", "POST"),
        ("/oidc/userinfo", "GET", "GET, POST"),
    ],
)
async def test_preflight_allows_a_registered_origin_and_no_other(
    kit: Kit, path: str, method: str, methods: str
) -> None:
    await _public(kit, "App A")  # allowed the origin of its redirect URI
    await _public(kit, "SPA C", redirect_uris=["https://partner-c.example/cb"], web_origins=[SPA_C])
    for origin in (APP_A, SPA_C):
        answer = await kit.client.options(path, headers=_preflight(origin, method))
        assert answer.status_code == 204
        _allows(answer, origin)
        assert answer.headers["access-control-allow-methods"] == methods
        allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
        assert allowed == {"authorization", "content-type", "dpop"}
        assert 0 < int(answer.headers["access-control-max-age"]) <= 3600
    # Unknown; C's redirect origin (its web origins replace those); "null" (a sandboxed frame).
    for origin in (EVIL, "https://partner-c.example", "null", "http://partner-a.example"):
        answer = await kit.client.options(path, headers=_preflight(origin, method))
        assert answer.status_code == 204
        _no_cors(answer)


async def test_preflight_sees_a_client_registered_or_disabled_since(kit: Kit, redis_client: Redis) -> None:
    """The preflight's origin set is cached in Redis, briefly; the admin API drops it on every change."""
    before = await kit.client.options("/oidc/token", headers=_preflight(APP_B))
    _no_cors(before)  # and the set, without APP_B, is now cached
    assert 0 < await redis_client.ttl(ORIGINS_KEY) <= ORIGINS_TTL
    client_id = await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    _allows(await kit.client.options("/oidc/token", headers=_preflight(APP_B)), APP_B)
    disabled = await kit.client.post(
        f"/api/v1/identity/admin/oidc-clients/{client_id}/disable",
        headers={"Authorization": f"Bearer {await kit.operator()}"},
    )
    assert disabled.status_code == 200, disabled.text
    _no_cors(await kit.client.options("/oidc/token", headers=_preflight(APP_B)))


async def test_token_answer_allows_only_the_clients_own_origin(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app_a = await _public(kit, "App A")
    await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    own = await _tokens(kit, app_a, APP_A)
    assert own.status_code == 200, own.text
    _allows(own, APP_A)
    assert "www-authenticate" in own.headers["access-control-expose-headers"].lower()
    # APP_B passes the preflight (client B's origin), but these are client A's tokens.
    foreign = await _tokens(kit, app_a, APP_B)
    assert foreign.status_code == 200, foreign.text
    _no_cors(foreign)
    assert "Origin" in foreign.headers["vary"]
    # A server's request (no Origin) is answered as before: no CORS at all.
    server = await _tokens(kit, app_a, None)
    assert server.status_code == 200
    _no_cors(server)


async def test_token_errors_carry_cors_for_an_allowed_origin(kit: Kit) -> None:
    app_a = await _public(kit, "App A")
    partner = await kit.register(name="Partner B", redirect_uris=[REDIRECT_B])  # client_secret_basic
    bad_code = {
        "grant_type": "authorization_code",
        "code": "no-such-code",
        "redirect_uri": REDIRECT,
        "code_verifier": "v" * 43,
        "client_id": app_a,
    }
    invalid_grant = await kit.client.post("/oidc/token", data=bad_code, headers={"Origin": APP_A})
    assert invalid_grant.status_code == 400 and invalid_grant.json()["error"] == "invalid_grant"
    _allows(invalid_grant, APP_A)
    _no_cors(await kit.client.post("/oidc/token", data=bad_code, headers={"Origin": APP_B}))
    # A wrong secret, from the origin of the client named in the Basic header.
    wrong = await kit.client.post(
        "/oidc/token",
        data={"grant_type": "client_credentials"},
        headers={"Origin": APP_B, **basic(partner["client_id"], "not-the-secret")},
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    _allows(wrong, APP_B)
    assert "www-authenticate" in wrong.headers["access-control-expose-headers"].lower()
    wrong = await kit.client.post(  # from client A's origin: not the partner's
        "/oidc/token",
        data={"grant_type": "client_credentials"},
        headers={"Origin": APP_A, **basic(partner["client_id"], "not-the-secret")},
    )
    assert wrong.status_code == 401
    _no_cors(wrong)
    # A client id nobody registered: allowed as in a preflight (some client's origin), else not.
    unknown = {"grant_type": "authorization_code", "code": "x", "client_id": "no-such-client"}
    answer = await kit.client.post("/oidc/token", data=unknown, headers={"Origin": APP_A})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    _allows(answer, APP_A)
    _no_cors(await kit.client.post("/oidc/token", data=unknown, headers={"Origin": EVIL}))


async def test_the_authenticated_client_decides_when_the_request_names_none(kit: Kit) -> None:
    """private_key_jwt names the client only inside the assertion (RFC 7523 §3: client_id is
    optional): the answer allows the origins of the client the assertion authenticated."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "alg": "ES256"}
    client_id = await kit.register_key_client(public)  # redirect URI REDIRECT: origin APP_A
    await _public(kit, "App B", redirect_uris=[REDIRECT_B])

    def grant() -> dict[str, str]:
        now = int(time.time())
        claims = {"iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": now + 60}
        assertion = jwt.encode(
            claims | {"jti": secrets.token_urlsafe(12)}, key, algorithm="ES256", headers={"kid": "k1"}
        )
        return {
            "grant_type": "client_credentials",
            "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        }

    own = await kit.client.post("/oidc/token", data=grant(), headers={"Origin": APP_A})
    assert own.status_code == 200, own.text
    _allows(own, APP_A)
    foreign = await kit.client.post("/oidc/token", data=grant(), headers={"Origin": APP_B})
    assert foreign.status_code == 200, foreign.text
    _no_cors(foreign)


async def test_userinfo_allows_the_tokens_client_origin_and_exposes_its_challenge(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app_a = await _public(kit, "App A")
    await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    tokens = (await _tokens(kit, app_a, APP_A)).json()
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    own = await kit.client.get("/oidc/userinfo", headers={"Origin": APP_A, **auth})
    assert own.status_code == 200 and own.json()["sub"]
    _allows(own, APP_A)
    _no_cors(await kit.client.get("/oidc/userinfo", headers={"Origin": APP_B, **auth}))
    # 401 without a token, and with a bad one: the script must be able to read the challenge.
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        refused = await kit.client.post("/oidc/userinfo", headers={"Origin": APP_A, **headers})
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        _allows(refused, APP_A)
        assert refused.headers["access-control-expose-headers"] == "WWW-Authenticate"
        _no_cors(await kit.client.post("/oidc/userinfo", headers={"Origin": EVIL, **headers}))


async def test_revocation_answers_cors_for_the_clients_origin(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app_a = await _public(kit, "App A")
    await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    tokens = (await _tokens(kit, app_a, APP_A)).json()
    form = {"token": tokens["refresh_token"], "client_id": app_a}
    _no_cors(await kit.client.post("/oidc/revoke", data=form, headers={"Origin": APP_B}))
    revoked = await kit.client.post("/oidc/revoke", data=form, headers={"Origin": APP_A})
    assert revoked.status_code == 200
    _allows(revoked, APP_A)


@pytest.mark.parametrize(
    "path", ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/oidc/jwks"]
)
async def test_public_documents_allow_any_origin(kit: Kit, path: str) -> None:
    for headers in ({"Origin": EVIL}, {}):
        document = await kit.client.get(path, headers=headers)
        assert document.status_code == 200
        assert document.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in document.headers
    preflight = await kit.client.options(path, headers=_preflight(EVIL, "GET"))
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-methods"] == "GET"
    assert "access-control-allow-credentials" not in preflight.headers


async def test_other_endpoints_and_pages_answer_no_cors(kit: Kit) -> None:
    """Navigated to (authorize, the login pages, logout, the web and console pages) or server to
    server (introspection, PAR): no CORS, even from a registered client's origin."""
    app_a = await _public(kit, "App A")
    partner = await kit.register(name="Partner B", redirect_uris=[REDIRECT_B])
    origin = {"Origin": APP_A}
    authorize, _ = await kit.authorize(app_a)
    page = await kit.follow(authorize)
    assert page.status_code == 200  # the login page
    for response in (authorize, page):
        _no_cors(response)
    for path in ("/oidc/authorize", "/oidc/introspect", "/oidc/par", "/oidc/logout", "/web/", "/console/"):
        _no_cors(await kit.client.options(path, headers=_preflight(APP_A)))
        _no_cors(await kit.client.get(path, headers=origin, follow_redirects=False))
    introspected = await kit.client.post(
        "/oidc/introspect",
        data={"token": "x"},
        headers={**origin, **basic(partner["client_id"], partner["client_secret"])},
    )
    assert introspected.status_code == 200
    _no_cors(introspected)


async def test_preflight_without_redis_asks_postgresql(kit: Kit, database_url: str) -> None:
    """The origin set in Redis is a cache: with Redis unreachable the preflight reads the clients
    from PostgreSQL instead of failing, and a registration's ``forget`` does not fail either."""
    await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        store = ClientStore(pool, cache_ttl=0, development=True, api_audience="citizen-api")
        policy = CorsPolicy(unreachable, store)
        assert await policy.allowed_for_any(APP_B)
        assert not await policy.allowed_for_any(EVIL)
        await policy.forget()
    finally:
        await pool.close()
        await unreachable.aclose()


async def test_a_refill_racing_a_disable_does_not_write_the_old_set_back(
    kit: Kit, redis_client: Redis, database_url: str
) -> None:
    """Worker 1 reads the origins from PostgreSQL; the admin API disables client B (``forget``)
    before worker 1 writes the set: the write is skipped, so B's origin is not allowed for the
    next 30 s from a stale set."""
    created = await _public(kit, "App B", redirect_uris=[REDIRECT_B])
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = ClientStore(pool, cache_ttl=0, development=True, api_audience="citizen-api")
        real = store.origins_in_use
        read, go = asyncio.Event(), asyncio.Event()

        async def paused() -> frozenset[str]:  # the read, then the worker is descheduled
            found = await real()
            read.set()
            await go.wait()
            return found

        store.origins_in_use = paused  # type: ignore[method-assign]
        preflight = asyncio.create_task(CorsPolicy(redis_client, store).allowed_for_any(APP_B))
        await read.wait()
        disabled = await kit.client.post(
            f"/api/v1/identity/admin/oidc-clients/{created}/disable",
            headers={"Authorization": f"Bearer {await kit.operator()}"},
        )
        assert disabled.status_code == 200, disabled.text
        go.set()
        assert await preflight  # it read before the disable
        store.origins_in_use = real  # type: ignore[method-assign]
        assert not await CorsPolicy(redis_client, store).allowed_for_any(APP_B)
    finally:
        await pool.close()
