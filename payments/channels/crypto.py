"""The three channels' signature schemes, and their development keys.

- UnionPay style: RSA PKCS#1 v1.5 with SHA-256 over the sorted ``key=value&...`` string of every
  non-empty field except ``signature``; the signature is base64 in the ``signature`` field.
- Alipay style (RSA2): the same construction over every parameter except ``sign`` and
  ``sign_type``; a response is signed over the exact JSON text of its ``*_response`` member.
- WeChat Pay API v3 style: HMAC-SHA256 over ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n`` for
  requests and ``TIMESTAMP\\nNONCE\\nBODY\\n`` for responses and notifications (base64); the
  notification's ``resource`` is AEAD_AES_256_GCM under the API v3 key.

Keys: outside production every channel's secrets derive from its integrations credential
(``integrations.credentials.dev_credential(simulator key, channel)``), so the simulators and the
connectors agree without files. RSA key pairs are generated deterministically from that
credential (HMAC-DRBG, Miller-Rabin), about 0.4 s per key, once per process.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "ChannelSecrets",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "channel_secrets",
    "hmac_b64",
    "rsa_sign",
    "rsa_verify",
    "sorted_query",
]

_SMALL_PRIMES = tuple(p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1)))


class _Drbg:
    def __init__(self, seed: bytes) -> None:
        self.key, self.counter = seed, 0

    def bits(self, count: int) -> int:
        out = b""
        while len(out) * 8 < count:
            self.counter += 1
            out += hmac.new(self.key, self.counter.to_bytes(8, "big"), hashlib.sha256).digest()
        return int.from_bytes(out, "big") >> (len(out) * 8 - count)


def _probably_prime(n: int, rng: _Drbg, rounds: int = 8) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(2 + rng.bits(64) % (n - 3), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: _Drbg, bits: int, e: int) -> int:
    while True:
        candidate = rng.bits(bits) | (3 << (bits - 2)) | 1
        if any(candidate % p == 0 for p in _SMALL_PRIMES) or (candidate - 1) % e == 0:
            continue
        if _probably_prime(candidate, rng):
            return candidate


@functools.lru_cache(maxsize=16)
def _rsa_key(seed: bytes) -> rsa.RSAPrivateKey:
    e = 65537
    rng = _Drbg(seed)
    p, q = _prime(rng, 1024, e), _prime(rng, 1024, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, p * q)
    )
    return numbers.private_key()


class ChannelSecrets:
    """One channel's keys as both sides see them in development (the merchant is the platform)."""

    def __init__(self, credential: str) -> None:
        self._seed = credential.encode()

    def _derive(self, label: str) -> bytes:
        return hmac.new(self._seed, label.encode(), hashlib.sha256).digest()

    @property
    def merchant_key(self) -> rsa.RSAPrivateKey:  # ours: signs requests (UnionPay, Alipay)
        return _rsa_key(self._derive("merchant-rsa"))

    @property
    def channel_key(self) -> rsa.RSAPrivateKey:  # the channel's: signs answers and notifications
        return _rsa_key(self._derive("channel-rsa"))

    @property
    def hmac_key(self) -> bytes:  # WeChat style
        return self._derive("hmac")

    @property
    def api_v3_key(self) -> bytes:  # WeChat style: AES-256-GCM over notification resources
        return self._derive("api-v3")

    @property
    def merchant_id(self) -> str:
        return "8" + str(int.from_bytes(self._derive("merchant-id")[:6], "big")).zfill(14)[:14]


@functools.lru_cache(maxsize=16)
def channel_secrets(credential: str) -> ChannelSecrets:
    return ChannelSecrets(credential)


def sorted_query(fields: Mapping[str, str], *, exclude: tuple[str, ...]) -> bytes:
    """``a=1&b=2`` over the non-empty fields not in ``exclude``, sorted by key."""
    return "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if v != "" and k not in exclude).encode()


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def hmac_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def aes_gcm_encrypt(key: bytes, nonce: str, associated: str, plaintext: bytes) -> str:
    return base64.b64encode(AESGCM(key).encrypt(nonce.encode(), plaintext, associated.encode())).decode()


def aes_gcm_decrypt(key: bytes, nonce: str, associated: str, ciphertext: str) -> bytes | None:
    try:
        return AESGCM(key).decrypt(nonce.encode(), base64.b64decode(ciphertext), associated.encode())
    except (InvalidTag, ValueError):
        return None
