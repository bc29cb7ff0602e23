"""Checklist 1 and 6 (DPoP, RFC 9449): proofs at the token endpoint, PAR, UserInfo and the API;
every refusal of §4.3; the code bound by ``dpop_jkt``; a public client's refresh token bound to its
key; a DPoP-bound token useless as a bearer token."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from identity.oidc.dpop import access_token_hash, jwk_thumbprint, normalised_htu
from tests.identity.conftest import API, ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, claims_of

TOKEN = "/oidc/token"


class Holder:
    """A client's DPoP key pair, making proofs as a client library would."""

    def __init__(self, curve: str = "P-256") -> None:
        if curve == "Ed25519":
            self.key: Any = ed25519.Ed25519PrivateKey.generate()
            self.alg = "EdDSA"
            self.jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        iat: float | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        signer: Any = None,
    ) -> str:
        body: dict[str, Any] = {
            "jti": secrets.token_urlsafe(12),
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            body["ath"] = access_token_hash(access_token)
        body.update(claims or {})
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(body, signer or self.key, algorithm=self.alg, headers=headers)


def _refused(response: Any, error: str = "invalid_dpop_proof", status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error, response.text


async def _machine(kit: Kit, **fields: Any) -> tuple[str, str]:
    partner = await kit.register(grant_types=["client_credentials"], scopes=["profile"], **fields)
    return partner["client_id"], partner["client_secret"]


async def _client_credentials(kit: Kit, cid: str, secret: str, *proofs: str) -> Any:
    headers = [("Authorization", basic(cid, secret)["Authorization"])]
    headers += [("DPoP", p) for p in proofs]
    return await kit.client.post(TOKEN, data={"grant_type": "client_credentials"}, headers=headers)


def test_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1 and its SHA-256 thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"
        "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgn"
        "Yb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIq"
        "bw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    key = {"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}
    assert jwk_thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # RFC 9449 §4.2: htu is compared without query and fragment, scheme and host case-insensitively.
    assert normalised_htu("HTTPS://ID.City.test:443/oidc/token?x=1#f") == "https://id.city.test/oidc/token"
    assert normalised_htu("https://id.city.test:8443/a") != normalised_htu("https://id.city.test/a")


async def test_discovery_lists_the_proof_algorithms(kit: Kit) -> None:
    meta = (await kit.client.get("/.well-known/openid-configuration")).json()
    assert meta["dpop_signing_alg_values_supported"] == ["ES256", "EdDSA", "PS256", "RS256"]


@pytest.mark.parametrize("curve", ["P-256", "Ed25519"])
async def test_token_is_bound_and_useless_as_a_bearer_token(kit: Kit, curve: str) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    holder = Holder(curve)
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    response = await kit.client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        headers={
            **basic(partner["client_id"], partner["client_secret"]),
            "DPoP": holder.proof("POST", ISSUER + TOKEN),
        },
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    access = tokens["access_token"]
    assert tokens["token_type"] == "DPoP" and claims_of(access)["cnf"] == {"jkt": holder.jkt}

    introspected = await kit.client.post(
        "/oidc/introspect",
        data={"token": access},
        headers=basic(partner["client_id"], partner["client_secret"]),
    )
    assert introspected.json()["token_type"] == "DPoP" and introspected.json()["cnf"]["jkt"] == holder.jkt

    userinfo = ISSUER + "/oidc/userinfo"
    as_bearer = await kit.client.get("/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert as_bearer.status_code == 401 and as_bearer.headers["www-authenticate"].startswith("DPoP ")
    proof = holder.proof("GET", userinfo, access_token=access)
    ok = await kit.client.get("/oidc/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": proof})
    assert ok.status_code == 200, ok.text
    assert ok.json()["sub"] == claims_of(tokens["id_token"])["sub"]
    replayed = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": proof}
    )
    assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_dpop_proof"
    no_ath = holder.proof("GET", userinfo)
    refused = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": no_ath}
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_dpop_proof"
    thief = Holder()  # a proof by another key, with the right ath, is still refused
    stolen = thief.proof("GET", userinfo, access_token=access)
    refused = await kit.client.get(
        "/oidc/userinfo", headers={"Authorization": f"DPoP {access}", "DPoP": stolen}
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_dpop_proof"


async def test_every_bad_proof_is_refused(kit: Kit) -> None:
    cid, secret = await _machine(kit)
    holder, other = Holder(), Holder()
    url, now = ISSUER + TOKEN, time.time()
    hs256 = jwt.encode(
        {"jti": "j", "htm": "POST", "htu": url, "iat": int(now)},
        "s" * 32,
        algorithm="HS256",
        headers={"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": "czMzMw"}},
    )
    bad = {
        "not a JWT": "not.a-jwt",
        "typ JWT": holder.proof("POST", url, header={"typ": "JWT"}),
        "MAC algorithm": hs256,
        "private key in jwk": holder.proof("POST", url, header={"jwk": {**holder.jwk, "d": "AAAA"}}),
        "no jwk": holder.proof("POST", url, header={"jwk": None}),
        "signed by another key": holder.proof("POST", url, signer=other.key),
        "another method": holder.proof("GET", url),
        "another URI": holder.proof("POST", ISSUER + "/oidc/par"),
        "iat 2 minutes old": holder.proof("POST", url, iat=now - 120),
        "iat a minute ahead": holder.proof("POST", url, iat=now + 60),
        "jti missing": holder.proof("POST", url, claims={"jti": None}),
    }
    for name, proof in bad.items():
        response = await _client_credentials(kit, cid, secret, proof)
        assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof", (
            name,
            response.text,
        )
    # Two proofs are refused (§4.3 item 1), and one proof is accepted only once (jti, §11.1).
    _refused(
        await _client_credentials(kit, cid, secret, holder.proof("POST", url), holder.proof("POST", url))
    )
    proof = holder.proof("POST", url)
    assert (await _client_credentials(kit, cid, secret, proof)).status_code == 200
    _refused(await _client_credentials(kit, cid, secret, proof))
    # Clock skew of ±10 s is tolerated (FAPI 2.0 conformance: iat ±10 s).
    for skew in (-10, 10):
        response = await _client_credentials(kit, cid, secret, holder.proof("POST", url, iat=now + skew))
        assert response.status_code == 200 and response.json()["token_type"] == "DPoP", response.text
    # Without a proof the same client still gets a bearer token ...
    plain = await _client_credentials(kit, cid, secret)
    assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer"
    # ... but a client registered with dpop_bound_access_tokens never does (§5.2).
    bound_id, bound_secret = await _machine(kit, name="Bound", dpop_bound_access_tokens=True)
    _refused(await _client_credentials(kit, bound_id, bound_secret))
    assert (
        await _client_credentials(kit, bound_id, bound_secret, holder.proof("POST", url))
    ).status_code == 200


async def test_dpop_jkt_binds_the_code_to_a_key(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    holder, thief = Holder(), Holder()
    auth = basic(partner["client_id"], partner["client_secret"])

    async def redeem(code: str, verifier: str, proof: str | None) -> Any:
        headers = {**auth, **({"DPoP": proof} if proof else {})}
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        return await kit.client.post(TOKEN, data=form, headers=headers)

    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, dpop_jkt=holder.jkt)
    _refused(await redeem(query["code"], verifier, thief.proof("POST", ISSUER + TOKEN)))
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, dpop_jkt=holder.jkt)
    _refused(await redeem(query["code"], verifier, None))
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, dpop_jkt=holder.jkt)
    ok = await redeem(query["code"], verifier, holder.proof("POST", ISSUER + TOKEN))
    assert ok.status_code == 200 and claims_of(ok.json()["access_token"])["cnf"]["jkt"] == holder.jkt

    # At PAR, a proof binds the code the same way; dpop_jkt and the proof's key must agree.
    pushed = {
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
    }
    par = ISSUER + "/oidc/par"
    mismatch = await kit.client.post(
        "/oidc/par",
        data={**pushed, "dpop_jkt": thief.jkt},
        headers={**auth, "DPoP": holder.proof("POST", par)},
    )
    _refused(mismatch)
    accepted = await kit.client.post(
        "/oidc/par", data=pushed, headers={**auth, "DPoP": holder.proof("POST", par)}
    )
    assert accepted.status_code == 201, accepted.text
    _refused(await kit.client.post("/oidc/par", data=pushed, headers={**auth, "DPoP": "x.y.z"}))
    bad_jkt, _ = await kit.authorize(partner["client_id"], dpop_jkt="short")
    assert bad_jkt.status_code in (302, 303) and "invalid_request" in bad_jkt.headers["location"]


async def test_public_client_refresh_token_is_bound_to_its_key(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    app_client = await kit.register(
        name="City app",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=["cn.city.app:/callback"],
        scopes=["openid", "api", "offline_access"],
    )
    cid = app_client["client_id"]
    holder, thief = Holder(), Holder()
    query, verifier = await kit.sign_in(
        cid, ZHANG.mobile, scope="openid api offline_access", redirect_uri="cn.city.app:/callback"
    )
    first = await kit.client.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": "cn.city.app:/callback",
            "code_verifier": verifier,
            "client_id": cid,
        },
        headers={"DPoP": holder.proof("POST", ISSUER + TOKEN)},
    )
    assert first.status_code == 200, first.text
    tokens = first.json()

    async def refresh(proof: str | None) -> Any:
        headers = {"DPoP": proof} if proof else {}
        form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": cid}
        return await kit.client.post(TOKEN, data=form, headers=headers)

    _refused(await refresh(None))
    _refused(await refresh(thief.proof("POST", ISSUER + TOKEN)))
    # The refused attempts consumed nothing: the holder of the key refreshes.
    rotated = await refresh(holder.proof("POST", ISSUER + TOKEN))
    assert rotated.status_code == 200 and rotated.json()["token_type"] == "DPoP", rotated.text

    # The API (the app's own bearer guard) asks for the proof too.
    access = rotated.json()["access_token"]
    me = f"{ISSUER}{API}/me"
    assert (
        await kit.client.get(f"{API}/me", headers={"Authorization": f"Bearer {access}"})
    ).status_code == 401
    ok = await kit.client.get(
        f"{API}/me",
        headers={"Authorization": f"DPoP {access}", "DPoP": holder.proof("GET", me, access_token=access)},
    )
    assert ok.status_code == 200, ok.text
    wrong_uri = holder.proof("GET", f"{ISSUER}{API}/cards/me", access_token=access)
    refused = await kit.client.get(
        f"{API}/me", headers={"Authorization": f"DPoP {access}", "DPoP": wrong_uri}
    )
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("DPoP ")

    # A token that is not bound is refused under the DPoP scheme (§7.1), even with a valid proof.
    query, verifier = await kit.sign_in(
        cid, ZHANG.mobile, scope="openid api", redirect_uri="cn.city.app:/callback"
    )
    unbound = await kit.tokens(cid, None, query["code"], verifier, redirect_uri="cn.city.app:/callback")
    plain = unbound.json()["access_token"]
    assert unbound.json()["token_type"] == "Bearer"
    assert (
        await kit.client.get(f"{API}/me", headers={"Authorization": f"Bearer {plain}"})
    ).status_code == 200
    as_dpop = await kit.client.get(
        f"{API}/me",
        headers={"Authorization": f"DPoP {plain}", "DPoP": holder.proof("GET", me, access_token=plain)},
    )
    assert as_dpop.status_code == 401
