"""Signing and verifying the provider's JWTs with pyjwt; the algorithm always comes from us."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import jwt

from identity.oidc.keys import KeyStore

__all__ = ["TokenInvalid", "half_hash", "sign", "verify_own"]


class TokenInvalid(Exception):
    """Malformed, wrongly signed, expired, for another audience or of the wrong type."""


async def sign(keys: KeyStore, claims: dict[str, Any], *, alg: str, typ: str) -> str:
    key = await keys.signing_key(alg)
    return jwt.encode(claims, key.private, algorithm=alg, headers={"kid": key.kid, "typ": typ})


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (OpenID Connect Core §3.1.3.6): left half of the hash, base64url.

    SHA-256 for ES256 and RS256; for EdDSA with Ed25519, SHA-512 (the curve's hash)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


async def verify_own(
    keys: KeyStore,
    token: str,
    *,
    algorithms: list[str],
    typ: str | None,
    issuer: str,
    audience: str | list[str] | None = None,
    verify_exp: bool = True,
) -> dict[str, Any]:
    """Claims of a token this provider signed; ``TokenInvalid`` for anything else."""
    if len(token) > 8192 or token.count(".") != 2:
        raise TokenInvalid("not a compact JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenInvalid("malformed header") from None
    if header.get("alg") not in algorithms:
        raise TokenInvalid("algorithm not allowed")
    if typ is not None and str(header.get("typ", "")).lower() not in {typ, "application/" + typ}:
        raise TokenInvalid("wrong token type")
    kid = header.get("kid")
    key = await keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None or key.alg != header["alg"]:
        raise TokenInvalid("unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public,
            algorithms=[key.alg],
            issuer=issuer,
            audience=audience,
            leeway=dt.timedelta(seconds=5),
            options={
                "verify_aud": audience is not None,
                "verify_exp": verify_exp,
                "require": ["iss", "iat"] + (["exp"] if verify_exp else []),
            },
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid(type(exc).__name__) from None
    return claims
