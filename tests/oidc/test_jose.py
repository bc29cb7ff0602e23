"""The provider's own compact JWS (``identity.oidc.jose``): the RFC 7515 A.3 vector, pyjwt reading
what we sign and us reading what pyjwt signs with our keys, for each algorithm, and every refusal:
a foreign or unlisted algorithm, HS256 with our key id, an unknown key, a critical header, a
wrong type, a stray character, a tampered payload, expiry, a future iat, the issuer, the audience."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from backend.keyring import Keyring
from backend.settings import Settings
from identity.oidc.jose import TokenInvalid, sign, verify_own, verify_signature
from identity.oidc.keys import KeyStore
from identity.oidc.wiring import key_store

ISS = "https://id.city.test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rfc7515_a3_es256_vector() -> None:
    """RFC 7515 Appendix A.3: the example's raw R || S signature verifies with the example's key."""
    x = int.from_bytes(_unb64("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"), "big")
    y = int.from_bytes(_unb64("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    signing_input = (
        b"eyJhbGciOiJFUzI1NiJ9."
        b"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    )
    signature = _unb64(
        "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    )
    assert verify_signature("ES256", public, signing_input, signature)
    assert not verify_signature("ES256", public, signing_input + b"x", signature)
    assert not verify_signature("ES256", public, signing_input, signature[:-1])
    assert not verify_signature("RS256", public, signing_input, signature)  # the key's alg only


@pytest_asyncio.fixture
async def keys(database_url: str, keyring: Keyring, settings: Settings) -> AsyncIterator[KeyStore]:
    pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        store = key_store(pool, keyring, settings.oidc)
        await store.ensure()
        yield store
    finally:
        await pool.close()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "sub": "s", "aud": ["api"], "iat": now, "exp": now + 60, "jti": "j", **extra}


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
async def test_pyjwt_reads_ours_and_we_read_pyjwts(keys: KeyStore, alg: str) -> None:
    token = await sign(keys, _claims(), alg=alg, typ="at+jwt")
    key = await keys.signing_key(alg)
    decoded = jwt.decode(token, key.public, algorithms=[alg], audience="api", issuer=ISS)
    assert decoded["jti"] == "j" and jwt.get_unverified_header(token)["typ"] == "at+jwt"
    theirs = jwt.encode(_claims(), key.private, algorithm=alg, headers={"kid": key.kid, "typ": "at+jwt"})
    assert (await verify_own(keys, theirs, algorithms=[alg], typ="at+jwt", issuer=ISS))["jti"] == "j"


async def test_refusals(keys: KeyStore) -> None:
    good = await sign(keys, _claims(), alg="ES256", typ="at+jwt")
    key = await keys.signing_key("ES256")
    head, body, signature = good.split(".")

    async def refused(token: str, **options: Any) -> None:
        arguments: dict[str, Any] = {"algorithms": ["ES256"], "typ": "at+jwt", "issuer": ISS, **options}
        with pytest.raises(TokenInvalid):
            await verify_own(keys, token, **arguments)

    await verify_own(keys, good, algorithms=["ES256"], typ="at+jwt", issuer=ISS, audience="api")

    def header(**fields: Any) -> str:
        return _b64(json.dumps({"alg": "ES256", "kid": key.kid, "typ": "at+jwt", **fields}).encode())

    await refused(good, algorithms=["RS256"])  # not among the allowed
    await refused(f"{header(alg='none')}.{body}.")
    hs256 = jwt.encode(_claims(), "k" * 32, algorithm="HS256", headers={"kid": key.kid, "typ": "at+jwt"})
    await refused(hs256, algorithms=["ES256", "HS256"])  # our kid is an ES256 key, never a MAC secret
    await refused(f"{header(kid='unknown')}.{body}.{signature}")
    await refused(f"{header(crit=['exp'])}.{body}.{signature}")
    await refused(good, typ="logout+jwt")
    await refused(f"{head}.{body}.{signature[:-2]}*{signature[-1]}")  # stray character
    await refused(f"{head}.{body}x.{signature}")
    await refused(good.replace(".", "..", 1))
    tampered = _b64(json.dumps(_claims(sub="someone else")).encode())
    await refused(f"{head}.{tampered}.{signature}")
    now = int(time.time())
    for claims, options in (
        (_claims(exp=now - 60), {}),
        (_claims(iat=now + 600), {}),
        (_claims(nbf=now + 600), {}),
        (_claims(exp="soon"), {}),
        ({k: v for k, v in _claims().items() if k != "iat"}, {}),
        (_claims(iss="https://elsewhere.example"), {}),
        (_claims(), {"audience": "another-api"}),
    ):
        await refused(await sign(keys, claims, alg="ES256", typ="at+jwt"), **options)
