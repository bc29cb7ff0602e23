"""Checklist 1 (discovery) and 2 (JWKS, key sizes, rotation: publish before sign, keep until expiry)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from identity.oidc.settings import OidcSettings
from identity.oidc.wiring import key_store
from tests.oidc.conftest import ISSUER


@pytest.fixture
def oidc_settings(settings_with_upstreams: Settings) -> Settings:
    """Workers re-read the keys on every use here, so a rotation shows at once."""
    return settings_with_upstreams.replace(oidc=OidcSettings(issuer=ISSUER, key_reload_interval=0.0))


async def test_discovery_metadata(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/.well-known/openid-configuration")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    meta = response.json()
    assert meta["issuer"] == ISSUER  # exact, no trailing slash
    endpoints = [v for k, v in meta.items() if k.endswith("_endpoint") or k == "jwks_uri"]
    assert len(endpoints) >= 8 and all(e.startswith("https://") for e in endpoints)
    assert {"ES256", "RS256", "EdDSA"} <= set(meta["id_token_signing_alg_values_supported"])
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["pushed_authorization_request_endpoint"] == f"{ISSUER}/oidc/par"
    assert meta["response_types_supported"] == ["code"]
    assert "password" not in meta["grant_types_supported"] and "implicit" not in meta["grant_types_supported"]
    assert "openid" in meta["scopes_supported"] and "pairwise" in meta["subject_types_supported"]
    assert meta["backchannel_logout_supported"] and meta["backchannel_logout_session_supported"]


async def test_jwks_is_valid_with_unique_kids_and_strong_keys(client: AsyncTestClient[Litestar]) -> None:
    keys = (await client.get("/oidc/jwks")).json()["keys"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids)) == 3
    by_alg = {k["alg"]: k for k in keys}
    assert by_alg["ES256"]["crv"] == "P-256" and by_alg["EdDSA"]["crv"] == "Ed25519"
    rsa = jwt.PyJWK(by_alg["RS256"])
    assert rsa.key.key_size >= 2048
    for key in keys:
        assert "d" not in key and key["use"] == "sig"
        jwt.PyJWK(key)  # parses


async def test_rotation_publishes_before_signing_and_keeps_the_old_key(
    client: AsyncTestClient[Litestar], oidc_settings: Settings, keyring: Keyring, database_url: str
) -> None:
    pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = key_store(pool, keyring, oidc_settings.oidc)
        await store.load()
        old = await store.signing_key("ES256")
        new = await store.rotate("ES256", delay=3600)
        kids = {k["kid"] for k in (await client.get("/oidc/jwks")).json()["keys"]}
        assert {old.kid, new.kid} <= kids  # published at once ...
        assert (await store.signing_key("ES256")).kid == old.kid  # ... but the old key still signs
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3601)
        assert (await store.signing_key("ES256", now=later)).kid == new.kid
        retired = {k.kid: k for k in store.published()}[old.kid]
        assert retired.retired_at is not None and retired.published_until is not None
        # The old key stays published until every token it signed has expired.
        lifetime = max(oidc_settings.oidc.access_token_ttl, oidc_settings.oidc.id_token_ttl)
        assert retired.published_until - retired.retired_at >= dt.timedelta(seconds=lifetime)
        assert retired.published_at(retired.retired_at + dt.timedelta(seconds=lifetime - 1))
        assert not retired.published_at(retired.published_until)
        # An ID token signed before the rotation still verifies against the published JWKS.
        token = jwt.encode({"iss": ISSUER}, old.private, algorithm="ES256", headers={"kid": old.kid})
        jwks = jwt.PyJWKSet.from_dict((await client.get("/oidc/jwks")).json())
        assert jwt.decode(token, jwks[old.kid].key, algorithms=["ES256"])["iss"] == ISSUER
    finally:
        await pool.close()


def test_code_lifetime_is_at_most_a_minute() -> None:
    assert OidcSettings().code_ttl <= 60
    with pytest.raises(ValueError, match="code_ttl"):
        OidcSettings(code_ttl=61)
    with pytest.raises(ValueError, match="signing_alg"):
        OidcSettings(signing_alg="HS256")
