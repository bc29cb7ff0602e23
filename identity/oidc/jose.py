"""Signing and verifying the provider's own JWTs (compact JWS, RFC 7515) with cryptography.

pyjwt re-parses and re-validates on every call (JSON through the standard library, the header's
characters one by one, deep-copied options), which was most of the CPU of introspection and a
good part of every token answer. Here the key objects stay loaded (``keys.KeyStore``), the
protected header of each (key, typ) is encoded once, claims go through msgspec, and verification
takes the algorithm from our key, never from the token. pyjwt stays for what others sign
(client assertions, the relying party side).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from typing import Any, cast

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from identity.oidc.keys import KeyStore, PrivateKey, PublicKey, SigningKey

__all__ = [
    "TokenInvalid",
    "check_claims",
    "decode_own",
    "half_hash",
    "sign",
    "sign_with",
    "verify_own",
    "verify_signature",
]

_SEGMENT = re.compile(rb"[A-Za-z0-9_-]*")
_LEEWAY = 5
_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()
_headers: dict[tuple[str, str], bytes] = {}


class TokenInvalid(Exception):
    """Malformed, wrongly signed, expired, for another audience or of the wrong type."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(segment: bytes) -> bytes:
    # The alphabet is checked first: the decoder would otherwise skip stray characters, and two
    # different strings would carry one signature.
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise TokenInvalid("not base64url")
    try:
        return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error:
        raise TokenInvalid("not base64url") from None


def _header(key: SigningKey, typ: str) -> bytes:
    found = _headers.get((key.kid, typ))
    if found is None:
        found = _b64(_encode.encode({"alg": key.alg, "kid": key.kid, "typ": typ}))
        _headers[(key.kid, typ)] = found
    return found


_ES256 = ec.ECDSA(hashes.SHA256())  # immutable; made once instead of per signature


def _raw_signature(alg: str, private: PrivateKey, data: bytes) -> bytes:
    # ``KeyStore`` makes each key for its algorithm; the casts skip an ABC isinstance per token
    # (a wrong pairing would still fail inside cryptography, as an AttributeError or TypeError).
    if alg == "ES256":
        r, s = decode_dss_signature(cast(ec.EllipticCurvePrivateKey, private).sign(data, _ES256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 §3.4: R || S, not DER
    if alg == "RS256":
        return cast(rsa.RSAPrivateKey, private).sign(data, padding.PKCS1v15(), hashes.SHA256())
    return cast(ed25519.Ed25519PrivateKey, private).sign(data)


def verify_signature(alg: str, public: PublicKey, data: bytes, signature: bytes) -> bool:
    """``alg`` is the key's own algorithm (never read from the token being checked)."""
    try:
        if alg == "ES256":
            if len(signature) != 64 or not isinstance(public, ec.EllipticCurvePublicKey):
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        elif alg == "RS256":
            if not isinstance(public, rsa.RSAPublicKey):
                return False
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "EdDSA":
            if not isinstance(public, ed25519.Ed25519PublicKey):
                return False
            public.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def sign_with(key: SigningKey, claims: dict[str, Any], *, typ: str) -> str:
    signing_input = _header(key, typ) + b"." + _b64(_encode.encode(claims))
    return (signing_input + b"." + _b64(_raw_signature(key.alg, key.private, signing_input))).decode()


async def sign(keys: KeyStore, claims: dict[str, Any], *, alg: str, typ: str) -> str:
    return sign_with(await keys.signing_key(alg), claims, typ=typ)


def half_hash(value: str, alg: str) -> str:
    """``at_hash`` / ``c_hash`` (OpenID Connect Core §3.1.3.6): left half of the hash, base64url.

    SHA-256 for ES256 and RS256; for EdDSA with Ed25519, SHA-512 (the curve's hash)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(f"{name} is not a number")
    return float(value)


def check_claims(
    claims: dict[str, Any], *, issuer: str, audience: str | list[str] | None, verify_exp: bool
) -> None:
    now = time.time()
    if claims.get("iss") != issuer:
        raise TokenInvalid("InvalidIssuerError")
    iat, exp, nbf = _number(claims, "iat"), _number(claims, "exp"), _number(claims, "nbf")
    if iat is None:
        raise TokenInvalid("MissingRequiredClaimError")
    if iat > now + _LEEWAY:
        raise TokenInvalid("ImmatureSignatureError")
    if nbf is not None and nbf > now + _LEEWAY:
        raise TokenInvalid("ImmatureSignatureError")
    if verify_exp:
        if exp is None:
            raise TokenInvalid("MissingRequiredClaimError")
        if exp <= now - _LEEWAY:
            raise TokenInvalid("ExpiredSignatureError")
    if audience is not None:
        present = claims.get("aud")
        names = present if isinstance(present, list) else [present]
        wanted = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(n, str) and n in wanted for n in names):
            raise TokenInvalid("InvalidAudienceError")


async def decode_own(keys: KeyStore, token: str, *, algorithms: list[str], typ: str | None) -> dict[str, Any]:
    """The claims of a token signed by one of our keys, unchecked yet (see ``check_claims``).

    What this establishes depends only on the token's bytes and our keys, so a caller may keep
    the answer for the same string; the time- and audience-dependent checks are the other half."""
    if len(token) > 8192 or token.count(".") != 2:
        raise TokenInvalid("not a compact JWS")
    raw = token.encode("ascii", "replace")
    head, body, signature = raw.split(b".")
    try:
        header = _decode.decode(_unb64(head))
    except msgspec.DecodeError:
        raise TokenInvalid("malformed header") from None
    if not isinstance(header, dict):
        raise TokenInvalid("malformed header")
    if header.get("alg") not in algorithms:
        raise TokenInvalid("algorithm not allowed")
    if "crit" in header:  # we never set one, so none is understood (RFC 7515 §4.1.11)
        raise TokenInvalid("unsupported critical header")
    if typ is not None and str(header.get("typ", "")).lower() not in {typ, "application/" + typ}:
        raise TokenInvalid("wrong token type")
    kid = header.get("kid")
    key = await keys.verification_key(kid) if isinstance(kid, str) else None
    if key is None or key.alg != header["alg"]:
        raise TokenInvalid("unknown key")
    if not verify_signature(key.alg, key.public, head + b"." + body, _unb64(signature)):
        raise TokenInvalid("InvalidSignatureError")
    try:
        claims = _decode.decode(_unb64(body))
    except msgspec.DecodeError:
        raise TokenInvalid("malformed claims") from None
    if not isinstance(claims, dict):
        raise TokenInvalid("malformed claims")
    return claims


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
    claims = await decode_own(keys, token, algorithms=algorithms, typ=typ)
    check_claims(claims, issuer=issuer, audience=audience, verify_exp=verify_exp)
    return claims
