"""Single-DES and two-key 3DES in ECB mode: the block primitive under every MAC and key derivation.

Reference: card-protocol.md §1.4 (single-DES CBC-MAC under 8-byte process keys), §2.1 and §3 (two-key
3DES under 16-byte card and issuer keys).

``TripleDES`` comes from ``cryptography.hazmat.decrepit`` (its home since cryptography 43), so importing
it raises no deprecation warning. Keys are expanded to the 24-byte form before they reach
``cryptography``: an 8-byte DES key ``K`` becomes ``K|K|K`` (EDE with three equal keys is single DES),
a 16-byte key ``K1|K2`` becomes ``K1|K2|K1``. ``cryptography`` deprecates the 8- and 16-byte forms and
warns on them; the 24-byte forms compute exactly the same permutation.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

__all__ = [
    "DES_BLOCK_SIZE",
    "des_cbc_encrypt",
    "des_ecb_decrypt",
    "des_ecb_encrypt",
    "tdes_ecb_decrypt",
    "tdes_ecb_encrypt",
]

DES_BLOCK_SIZE = 8


def _ecb(key24: bytes, data: bytes, *, encrypt: bool) -> bytes:
    if not data or len(data) % DES_BLOCK_SIZE:
        raise ValueError(f"DES data must be a non-empty multiple of 8 bytes, got {len(data)}")
    # ECB on whole blocks is the raw block permutation; chaining is done by the callers (_mac.py),
    # exactly as the card standards describe it.
    cipher = Cipher(TripleDES(key24), modes.ECB())  # noqa: S305
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(bytes(data)) + context.finalize()


def _single_key(key: bytes) -> bytes:
    if len(key) != 8:
        raise ValueError(f"a single-DES key is 8 bytes, got {len(key)}")
    return bytes(key) * 3


def _double_key(key: bytes) -> bytes:
    if len(key) != 16:
        raise ValueError(f"a two-key 3DES key is 16 bytes, got {len(key)}")
    return bytes(key) + bytes(key[:8])


def des_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Single-DES ECB encryption; ``key`` is 8 bytes, ``data`` a multiple of 8 bytes."""
    return _ecb(_single_key(key), data, encrypt=True)


def des_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """Single-DES ECB decryption; ``key`` is 8 bytes, ``data`` a multiple of 8 bytes."""
    return _ecb(_single_key(key), data, encrypt=False)


def tdes_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """Two-key 3DES (EDE, K1|K2|K1) ECB encryption; ``key`` is 16 bytes."""
    return _ecb(_double_key(key), data, encrypt=True)


def tdes_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """Two-key 3DES (EDE, K1|K2|K1) ECB decryption; ``key`` is 16 bytes."""
    return _ecb(_double_key(key), data, encrypt=False)


def des_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """Single-DES CBC encryption (no padding); ``key`` and ``iv`` are 8 bytes, ``data`` whole blocks."""
    if len(iv) != DES_BLOCK_SIZE:
        raise ValueError(f"a DES IV is 8 bytes, got {len(iv)}")
    if not data or len(data) % DES_BLOCK_SIZE:
        raise ValueError(f"DES data must be a non-empty multiple of 8 bytes, got {len(data)}")
    context = Cipher(TripleDES(_single_key(key)), modes.CBC(iv)).encryptor()
    return context.update(bytes(data)) + context.finalize()
