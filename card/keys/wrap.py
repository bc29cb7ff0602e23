"""AES-256-GCM wrapping of key material under the keyring's ``card-kek`` (the store's only at-rest form)."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from card.errors import KeyStoreError

__all__ = ["unwrap_key", "wrap_key"]

_NONCE = 12
_LABEL = b"citizen-card-key/1|"


def _aad(purpose: str, version: int) -> bytes:
    return _LABEL + purpose.encode() + b"|" + str(version).encode()


def wrap_key(kek: bytes, purpose: str, version: int, key: bytes) -> bytes:
    """``nonce(12) || AES-256-GCM(kek, key, aad=purpose|version)``: a key moved to another row fails."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(kek).encrypt(nonce, key, _aad(purpose, version))


def unwrap_key(kek: bytes, purpose: str, version: int, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _aad(purpose, version))
    except (InvalidTag, ValueError):
        raise KeyStoreError(f"the {purpose} key version {version} does not decrypt under card-kek") from None
