"""DPoP (RFC 9449): proofs of possession at the token endpoint and at the API.

A proof is a JWT the client signs with its own key for one request: header ``typ`` dpop+jwt, an
asymmetric ``alg`` we support, and ``jwk`` the public key (never private material); claims
``jti`` (used once: ``SET NX`` in Redis for as long as the proof could be accepted), ``htm``
(the request's method), ``htu`` (its URL without query and fragment), ``iat`` (within
``IAT_WINDOW`` seconds of now) and, beside an access token, ``ath`` (its SHA-256). What a proof
binds to is the key's RFC 7638 thumbprint (``jkt``): ``cnf.jkt`` in the access token, ``jkt`` on
the grant (its refresh tokens), ``dpop_jkt`` on an authorization code.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
import redis.asyncio as aioredis

from identity.oidc.errors import OAuthError
from identity.oidc.jose import TokenInvalid, decode_parts, verify_signature
from identity.oidc.keys import jwk_thumbprint

__all__ = [
    "ALGORITHMS",
    "IAT_WINDOW",
    "DpopVerifier",
    "access_token_hash",
    "normalise_htu",
    "thumbprint_of",
]

ALGORITHMS = ("ES256", "EdDSA", "RS256")
IAT_WINDOW = 60  # seconds either side of now
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
_KTY = {"ES256": "EC", "RS256": "RSA", "EdDSA": "OKP"}


def access_token_hash(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def normalise_htu(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, no query or fragment (RFC 9449 §4.3)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if parts.port in (None, default) else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_dpop_proof", description)


class DpopVerifier:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def verify(self, proof: str, *, method: str, url: str, access_token: str | None = None) -> str:
        """The thumbprint of the key that signed a valid, unused proof; ``invalid_dpop_proof``."""
        try:
            header, claims, signing_input, signature = decode_parts(proof)
        except TokenInvalid:
            raise _invalid("the DPoP proof is not a compact JWS") from None
        if header.get("typ") != "dpop+jwt":
            raise _invalid("the DPoP proof's typ must be dpop+jwt")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise _invalid("the DPoP proof's alg must be one of " + " ".join(ALGORITHMS))
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or jwk.get("kty") != _KTY[alg]:
            raise _invalid("the DPoP proof needs its public key (jwk) of the alg's type")
        if _PRIVATE_MEMBERS & set(jwk):
            raise _invalid("the DPoP proof's jwk must not hold private key material")
        try:
            public: Any = jwt.PyJWK(jwk, algorithm=alg).key
            thumbprint = jwk_thumbprint(jwk)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise _invalid("the DPoP proof's jwk is not a usable public key") from None
        if not verify_signature(alg, public, signing_input, signature):
            raise _invalid("the DPoP proof's signature does not verify with its jwk")
        self._check_claims(claims, method=method, url=url, access_token=access_token)
        jti = str(claims["jti"])
        key = f"oidc:dpop:{thumbprint}:{hashlib.sha256(jti.encode()).hexdigest()}"
        if not await self.redis.set(key, b"1", nx=True, ex=2 * IAT_WINDOW + 5):
            raise _invalid("the DPoP proof's jti was already used")
        return thumbprint

    @staticmethod
    def _check_claims(claims: dict[str, Any], *, method: str, url: str, access_token: str | None) -> None:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
            raise _invalid("the DPoP proof needs a jti (8 to 256 characters)")
        if claims.get("htm") != method:
            raise _invalid(f"the DPoP proof's htm must be {method}")
        htu = claims.get("htu")
        if not isinstance(htu, str) or normalise_htu(htu) != normalise_htu(url):
            raise _invalid("the DPoP proof's htu is not this endpoint")
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float) or abs(time.time() - iat) > IAT_WINDOW:
            raise _invalid(f"the DPoP proof's iat must be within {IAT_WINDOW} s of now")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise _invalid("the DPoP proof's ath does not match the access token")


def thumbprint_of(claims: dict[str, Any]) -> str | None:
    """The ``cnf.jkt`` an access token is bound to, if any."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None
