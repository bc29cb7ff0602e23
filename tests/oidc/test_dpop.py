"""DPoP (RFC 9449): each refusal of a proof at the token endpoint, tokens bound with cnf.jkt and
token_type DPoP, refresh tokens bound to the key, dpop_jkt at the authorization endpoint and at
PAR, and bound tokens at UserInfo, introspection and the API's guard."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from identity.oidc.keys import jwk_thumbprint
from tests.identity.conftest import API, ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, claims_of, query_of

TOKEN = ISSUER + "/oidc/token"


class Holder:
    """A client's DPoP key and the proofs it signs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jkt = jwk_thumbprint(self.jwk)

    def proof(
        self,
        htu: str = TOKEN,
        htm: str = "POST",
        *,
        token: str | None = None,
        header: dict[str, Any] | None = None,
        sign_with: Any = None,
        alg: str = "ES256",
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": htm,
            "htu": htu,
            "iat": int(time.time()),
        }
        if token is not None:
            body["ath"] = (
                base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
            )
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(body, sign_with or self.key, algorithm=alg, headers=headers)


def _error(response: Any, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


async def test_each_refusal_of_a_proof(kit: Kit) -> None:
    partner = await kit.register(grant_types=["client_credentials"], scopes=["profile"])
    auth = basic(partner["client_id"], partner["client_secret"])
    holder, other = Holder(), Holder()

    async def token(proof: str) -> Any:
        return await kit.client.post(
            "/oidc/token", data={"grant_type": "client_credentials"}, headers={**auth, "DPoP": proof}
        )

    private_jwk = ECAlgorithm.to_jwk(holder.key, as_dict=True)
    now = int(time.time())
    for proof in (
        "not-a-jwt",
        holder.proof(header={"typ": "JWT"}),
        jwt.encode(
            {"jti": "x" * 12, "htm": "POST", "htu": TOKEN, "iat": now},
            "k" * 32,
            algorithm="HS256",
            headers={"typ": "dpop+jwt", "jwk": holder.jwk},
        ),
        holder.proof(header={"jwk": None}),
        holder.proof(header={"jwk": private_jwk}),
        holder.proof(sign_with=other.key),  # the signature is not by the key in jwk
        holder.proof(htm="GET"),
        holder.proof(htu=ISSUER + "/oidc/par"),
        holder.proof(iat=now - 600),
        holder.proof(iat=now + 600),
        holder.proof(jti=None),
    ):
        _error(await token(proof), "invalid_dpop_proof")
    proof = holder.proof(htu=TOKEN + "?ignored=query")  # htu is compared without query
    done = await token(proof)
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": holder.jkt}
    _error(await token(proof), "invalid_dpop_proof")  # the same jti again
    introspected = await kit.client.post(
        "/oidc/introspect", data={"token": body["access_token"]}, headers=auth
    )
    assert introspected.json()["token_type"] == "DPoP"
    assert introspected.json()["cnf"] == {"jkt": holder.jkt}
    discovery = (await kit.client.get("/.well-known/openid-configuration")).json()
    assert "ES256" in discovery["dpop_signing_alg_values_supported"]


async def test_bound_tokens_and_refresh_tokens(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    auth = basic(partner["client_id"], partner["client_secret"])
    holder, thief = Holder(), Holder()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    response = await kit.client.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers={**auth, "DPoP": holder.proof()},
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    access = tokens["access_token"]
    assert tokens["token_type"] == "DPoP" and claims_of(access)["cnf"] == {"jkt": holder.jkt}
    userinfo = ISSUER + "/oidc/userinfo"
    # UserInfo: a bound token is not a bearer token; it needs a proof by its key, with ath.
    assert (await kit.client.get(userinfo, headers={"Authorization": f"Bearer {access}"})).status_code == 401
    for proof in (
        None,
        holder.proof(userinfo, "GET"),  # no ath
        holder.proof(userinfo, "GET", token="another token"),
        thief.proof(userinfo, "GET", token=access),
        holder.proof(userinfo, "POST", token=access),
    ):
        headers = {"Authorization": f"DPoP {access}", **({"DPoP": proof} if proof else {})}
        assert (await kit.client.get(userinfo, headers=headers)).status_code == 401
    good = {"Authorization": f"DPoP {access}", "DPoP": holder.proof(userinfo, "GET", token=access)}
    assert (await kit.client.get(userinfo, headers=good)).status_code == 200
    # The refresh token is bound too: no proof, or another key's, rotates nothing.
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    _error(await kit.client.post("/oidc/token", data=refresh, headers=auth), "invalid_grant")
    _error(
        await kit.client.post("/oidc/token", data=refresh, headers={**auth, "DPoP": thief.proof()}),
        "invalid_grant",
    )
    rotated = await kit.client.post("/oidc/token", data=refresh, headers={**auth, "DPoP": holder.proof()})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["token_type"] == "DPoP"


async def test_dpop_jkt_binds_the_code(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    auth = basic(partner["client_id"], partner["client_secret"])
    holder, other = Holder(), Holder()

    async def redeem(proof: str | None) -> Any:
        query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, dpop_jkt=holder.jkt)
        form = {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        return await kit.client.post(
            "/oidc/token", data=form, headers={**auth, **({"DPoP": proof} if proof else {})}
        )

    _error(await redeem(None), "invalid_grant")
    _error(await redeem(other.proof()), "invalid_grant")
    done = await redeem(holder.proof())
    assert done.status_code == 200 and claims_of(done.json()["access_token"])["cnf"] == {"jkt": holder.jkt}
    bad = await kit.client.get(
        "/oidc/authorize",
        params={
            "response_type": "code",
            "client_id": partner["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
            "dpop_jkt": "not a thumbprint",
        },
        follow_redirects=False,
    )
    assert query_of(bad.headers["location"])["error"] == "invalid_request"
    # A proof at PAR binds the code the same way.
    pushed = await kit.client.post(
        "/oidc/par",
        data={
            "response_type": "code",
            "client_id": partner["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": "y" * 43,
            "code_challenge_method": "S256",
            "dpop_jkt": other.jkt,
        },
        headers={**auth, "DPoP": holder.proof(ISSUER + "/oidc/par")},
    )
    _error(pushed, "invalid_dpop_proof")


async def test_the_api_guard_checks_the_proof(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=["cn.city.app:/callback"],
        scopes=["openid", "api"],
    )
    holder = Holder()
    query, verifier = await kit.sign_in(
        app["client_id"], ZHANG.mobile, scope="openid api", redirect_uri="cn.city.app:/callback"
    )
    response = await kit.client.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": "cn.city.app:/callback",
            "code_verifier": verifier,
            "client_id": app["client_id"],
        },
        headers={"DPoP": holder.proof()},
    )
    access = response.json()["access_token"]
    me = ISSUER + f"{API}/me"
    assert (await kit.client.get(me, headers={"Authorization": f"Bearer {access}"})).status_code == 401
    missing_ath = {"Authorization": f"DPoP {access}", "DPoP": holder.proof(me, "GET")}
    assert (await kit.client.get(me, headers=missing_ath)).status_code == 401
    wrong_url = {
        "Authorization": f"DPoP {access}",
        "DPoP": holder.proof(ISSUER + "/other", "GET", token=access),
    }
    assert (await kit.client.get(me, headers=wrong_url)).status_code == 401
    good = {"Authorization": f"DPoP {access}", "DPoP": holder.proof(me, "GET", token=access)}
    answer = await kit.client.get(me, headers=good)
    assert answer.status_code == 200, answer.text
