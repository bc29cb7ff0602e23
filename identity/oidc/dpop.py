"""DPoP, Demonstrating Proof of Possession (RFC 9449): sender-constrained tokens.

A client that holds a key pair sends, with a request, a ``DPoP`` header: a JWT signed with that
key whose header carries ``typ: dpop+jwt``, an asymmetric ``alg`` and the public ``jwk``, and whose
claims name the request (``htm``, ``htu``), the moment (``iat``), a unique ``jti`` and, when an
access token goes with it, ``ath`` (its SHA-256). Tokens issued against a proof carry the key's
RFC 7638 thumbprint in ``cnf.jkt``; the API then accepts them only with a fresh proof by the same
key, so a stolen token is worthless without the private key.

The checks are RFC 9449 §4.3 in order; the ``jti`` is remembered in Redis (``SET NX``) for as long
as the proof could be accepted, so a replayed proof is refused even on another worker.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import jwt

__all__ = [
    "ALGORITHMS",
    "DPoPInvalid",
    "DPoPVerifier",
    "access_token_hash",
    "jwk_thumbprint",
    "normalised_htu",
]

# §4.3 item 5: an asymmetric algorithm, never "none" or a MAC. FAPI 2.0 allows PS256, ES256 and
# EdDSA; RS256 is kept for older mobile platforms.
ALGORITHMS: Final = ("ES256", "EdDSA", "PS256", "RS256")
_KTY_OF_ALG: Final = {"ES256": "EC", "EdDSA": "OKP", "PS256": "RSA", "RS256": "RSA"}
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS: Final = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}
# Members that only a private (or symmetric) JWK has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_PROOF: Final = 4096
_MAX_JTI: Final = 256


class DPoPInvalid(Exception):
    """A proof that is missing, malformed, wrongly signed, stale, replayed or for another request.
    ``str(exc)`` says which, without echoing the proof."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding.

    >>> jwk_thumbprint({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
    ...   "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
    ...        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW"
    ...        "2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
    ...        "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"})
    'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs'
    """
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise DPoPInvalid("the jwk's key type is not supported")
    values = {name: jwk.get(name) for name in members}
    if not all(isinstance(v, str) and v for v in values.values()):
        raise DPoPInvalid("the jwk lacks a required member")
    canonical = json.dumps(values, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url of the SHA-256 of the access token's ASCII form."""
    return _b64url(hashlib.sha256(token.encode("ascii")).digest())


def normalised_htu(url: str) -> str:
    """The request URI without query and fragment (§4.2), its scheme and host in lower case and
    a default port dropped (RFC 3986 §6.2.2-6.2.3), so equivalent spellings compare equal."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and not ((scheme == "https" and port == 443) or (scheme == "http" and port == 80)):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


class DPoPVerifier:
    """Checks proofs for one deployment; ``max_age`` bounds how old an ``iat`` may be and
    ``leeway`` how far in the future (clock skew), both in seconds."""

    def __init__(self, redis: Any, *, max_age: int = 60, leeway: int = 15) -> None:
        self.redis = redis
        self.max_age = max_age
        self.leeway = leeway

    async def verify(
        self,
        proofs: Sequence[str],
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        now: float | None = None,
    ) -> str:
        """The thumbprint of the key that signed the request's one proof; ``DPoPInvalid`` otherwise."""
        if len(proofs) != 1:
            raise DPoPInvalid("exactly one DPoP header is required" if proofs else "a DPoP proof is required")
        claims, jkt = self._check(proofs[0], method, url, access_token, time.time() if now is None else now)
        # §11.1: a proof is single-use. Remember its jti until it would be too old anyway.
        digest = hashlib.sha256(str(claims["jti"]).encode()).hexdigest()[:40]
        fresh = await self.redis.set(
            f"oidc:dpop-jti:{jkt}:{digest}", b"1", nx=True, ex=self.max_age + self.leeway
        )
        if not fresh:
            raise DPoPInvalid("the DPoP proof was already used (jti replayed)")
        return jkt

    def _check(
        self, proof: str, method: str, url: str, access_token: str | None, now: float
    ) -> tuple[dict[str, Any], str]:
        if len(proof) > _MAX_PROOF or proof.count(".") != 2:
            raise DPoPInvalid("the DPoP proof is not a compact JWS")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise DPoPInvalid("the DPoP proof's header is malformed") from None
        if header.get("typ") != "dpop+jwt":
            raise DPoPInvalid("the DPoP proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise DPoPInvalid("the DPoP proof's alg must be one of " + ", ".join(ALGORITHMS))
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise DPoPInvalid("the DPoP proof's header must carry the public jwk")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise DPoPInvalid("the DPoP proof's jwk must be a public key")
        if jwk.get("kty") != _KTY_OF_ALG[alg]:
            raise DPoPInvalid("the DPoP proof's jwk does not fit its alg")
        jkt = jwk_thumbprint(jwk)
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims: dict[str, Any] = jwt.decode(
                proof,
                key.key,
                algorithms=[alg],
                options={
                    "verify_aud": False,
                    "verify_iat": False,  # checked below against our own window
                    "verify_exp": False,
                    "verify_nbf": False,
                    "require": ["jti", "htm", "htu", "iat"],
                },
            )
        except jwt.PyJWTError as exc:
            raise DPoPInvalid(f"the DPoP proof does not verify ({type(exc).__name__})") from None
        if key.key_type == "RSA" and getattr(key.key, "key_size", 0) < 2048:
            raise DPoPInvalid("the DPoP proof's RSA key is shorter than 2048 bits")
        jti = claims["jti"]
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
            raise DPoPInvalid("the DPoP proof's jti must be a short string")
        if claims["htm"] != method:
            raise DPoPInvalid("the DPoP proof is for another HTTP method (htm)")
        if not isinstance(claims["htu"], str) or normalised_htu(claims["htu"]) != normalised_htu(url):
            raise DPoPInvalid("the DPoP proof is for another URI (htu)")
        iat = claims["iat"]
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise DPoPInvalid("the DPoP proof's iat must be a number")
        if iat > now + self.leeway:
            raise DPoPInvalid("the DPoP proof is issued in the future (iat)")
        if iat < now - self.max_age:
            raise DPoPInvalid("the DPoP proof is too old (iat)")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str) or not secrets.compare_digest(ath, access_token_hash(access_token)):
                raise DPoPInvalid("the DPoP proof's ath does not match the access token")
        return claims, jkt
