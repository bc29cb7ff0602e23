"""Signing keys: ES256 (P-256) by default, RS256 (RSA 3072) and EdDSA (Ed25519) per client.

Keys live in ``identity.oidc_keys``, private halves sealed under the "oidc-kek" key. Rotation
publishes the new key first (``signs_from = now + publish delay``) and keeps the old one in the
JWKS until every token it signed has expired (``published_until``). Each worker keeps the keys in
memory and reloads them every few seconds, so a rotation made by ``citizen keys rotate`` in another
process is picked up without a restart.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from identity._db import Connection, Pool
from identity.oidc.settings import ALGORITHMS

__all__ = ["KeyStore", "SigningKey", "generate_key", "jwk_thumbprint"]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey
    public: PublicKey
    jwk: dict[str, Any]
    signs_from: dt.datetime
    retired_at: dt.datetime | None
    published_until: dt.datetime | None

    def signs_at(self, now: dt.datetime) -> bool:
        return self.signs_from <= now and (self.retired_at is None or now < self.retired_at)

    def published_at(self, now: dt.datetime) -> bool:
        return self.published_until is None or now < self.published_until


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    members = {k: jwk[k] for k in required[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _public_jwk(alg: str, public: PublicKey) -> dict[str, Any]:
    if isinstance(public, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk = {k: v for k, v in jwk.items() if k in {"kty", "crv", "x", "y", "n", "e"}}
    jwk.update({"kid": jwk_thumbprint(jwk), "alg": alg, "use": "sig"})
    return jwk


def generate_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg!r}")


class KeyStore:
    def __init__(
        self, pool: Pool, kek: bytes, *, publish_delay: int, token_lifetime: int, reload_every: float = 5.0
    ) -> None:
        self._pool = pool
        self._reload_every = reload_every
        self._aead = AESGCM(kek)
        self.publish_delay = publish_delay
        self.token_lifetime = token_lifetime  # the longest lifetime of anything a key signs
        self._keys: list[SigningKey] = []
        self._by_kid: dict[str, SigningKey] = {}
        self._loaded = 0.0
        self._jwks: bytes = b'{"keys":[]}'

    # -- sealing -----------------------------------------------------------------------------------

    def _seal(self, kid: str, private: PrivateKey) -> bytes:
        der = private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, der, f"oidc-key:{kid}".encode())

    def _unseal(self, kid: str, sealed: bytes) -> PrivateKey:
        der = self._aead.decrypt(sealed[:12], sealed[12:], f"oidc-key:{kid}".encode())
        # Sealed with AES-GCM by us, so its integrity is known: skip RSA's costly re-validation
        # (about 0.3 s for RSA-3072, which would block the event loop).
        key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
        assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
        return key

    # -- loading -----------------------------------------------------------------------------------

    async def load(self) -> None:
        rows = await self._pool.fetch(
            """
            SELECT kid, alg, public_jwk::text AS public_jwk, private_sealed, signs_from, retired_at,
                   published_until
            FROM identity.oidc_keys
            WHERE published_until IS NULL OR published_until > now()
            ORDER BY signs_from DESC
            """
        )
        keys = []
        for r in rows:
            known = self._by_kid.get(r["kid"])  # unseal each key once per process
            private = (
                known.private if known is not None else self._unseal(r["kid"], bytes(r["private_sealed"]))
            )
            keys.append(
                SigningKey(
                    kid=r["kid"],
                    alg=r["alg"],
                    private=private,
                    public=private.public_key(),
                    jwk=json.loads(r["public_jwk"]),
                    signs_from=r["signs_from"],
                    retired_at=r["retired_at"],
                    published_until=r["published_until"],
                )
            )
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys}
        self._jwks = msgspec.json.encode({"keys": [k.jwk for k in keys]})
        self._loaded = time.monotonic()

    async def _fresh(self) -> None:
        if time.monotonic() - self._loaded >= self._reload_every:
            await self.load()

    async def signing_key(self, alg: str, now: dt.datetime | None = None) -> SigningKey:
        await self._fresh()
        moment = now or dt.datetime.now(dt.UTC)
        for key in self._keys:  # newest first
            if key.alg == alg and key.signs_at(moment):
                return key
        await self.load()
        for key in self._keys:
            if key.alg == alg and key.signs_at(moment):
                return key
        raise RuntimeError(f"no {alg} signing key is active; run `citizen keys rotate`")

    async def verification_key(self, kid: str) -> SigningKey | None:
        await self._fresh()
        key = self._by_kid.get(kid)
        if key is None and time.monotonic() - self._loaded > 0.5:  # a key rotated in elsewhere
            await self.load()
            key = self._by_kid.get(kid)
        return key

    async def jwks(self) -> bytes:
        await self._fresh()
        return self._jwks

    def published(self, now: dt.datetime | None = None) -> list[SigningKey]:
        moment = now or dt.datetime.now(dt.UTC)
        return [k for k in self._keys if k.published_at(moment)]

    # -- creation and rotation ------------------------------------------------------------------------

    async def ensure(self, algs: tuple[str, ...] = ALGORITHMS) -> list[str]:
        """A signing key for each algorithm that has none (the first key signs at once)."""
        made = []
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('identity.oidc_keys'))")
            for alg in algs:
                live = await conn.fetchval(
                    "SELECT count(*) FROM identity.oidc_keys WHERE alg = $1 AND retired_at IS NULL", alg
                )
                if not live:
                    made.append(await self._insert(conn, alg, delay=0))
        await self.load()
        return made

    async def rotate(self, alg: str, *, delay: int | None = None) -> SigningKey:
        """A new key, published now and signing after ``delay``; the current one retires then."""
        wait = self.publish_delay if delay is None else delay
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('identity.oidc_keys'))")
            kid = await self._insert(conn, alg, delay=wait)
            signs_from = await conn.fetchval("SELECT signs_from FROM identity.oidc_keys WHERE kid = $1", kid)
            await conn.execute(
                """
                UPDATE identity.oidc_keys
                SET retired_at = $3::timestamptz,
                    published_until = $3::timestamptz + make_interval(secs => $4)
                WHERE alg = $1 AND kid <> $2 AND retired_at IS NULL
                """,
                alg,
                kid,
                signs_from,
                float(self.token_lifetime),
            )
        await self.load()
        return self._by_kid[kid]

    async def _insert(self, conn: Connection, alg: str, *, delay: int) -> str:
        private = generate_key(alg)
        jwk = _public_jwk(alg, private.public_key())
        kid = jwk["kid"]
        await conn.execute(
            """
            INSERT INTO identity.oidc_keys (kid, alg, public_jwk, private_sealed, created_at, signs_from)
            VALUES ($1, $2, $3::text::jsonb, $4, now(), now() + make_interval(secs => $5))
            """,
            kid,
            alg,
            json.dumps(jwk),
            self._seal(kid, private),
            float(delay),
        )
        return str(kid)

    async def status(self) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            """
            SELECT kid, alg, created_at, signs_from, retired_at, published_until FROM identity.oidc_keys
            ORDER BY alg, signs_from DESC
            """
        )
        return [dict(r) for r in rows]
