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

from tests.oidc.conftest import ISSUER, Kit

TOKEN = "/oidc/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


async def test_private_key_jwt_audience_is_the_issuer_only_as_a_string(kit: Kit) -> None:
    """FAPI 2.0 Security Profile §5.3.2.1 (OIDF audience-injection advisory, January 2025): an
    assertion whose aud is an endpoint URL, or a list (even one naming the issuer), is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "k1", "alg": "ES256", "use": "sig"}
    partner = await kit.register(
        auth_method="private_key_jwt",
        jwks={"keys": [public]},
        grant_types=["client_credentials"],
        scopes=["profile"],
    )
    cid = partner["client_id"]

    def assertion(aud: Any) -> str:
        now = int(time.time())
        claims = {"iss": cid, "sub": cid, "aud": aud, "iat": now, "exp": now + 60}
        claims["jti"] = secrets.token_urlsafe(12)
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})

    async def call(aud: Any) -> Any:
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE}
        return await kit.client.post(TOKEN, data={**form, "client_assertion": assertion(aud)})

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
