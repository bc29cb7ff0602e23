"""Personal data at rest: AES-256-GCM with the key id stored in the ciphertext, and a keyed blind index.

Ciphertext layout (bytea): ``0x01 | key id (4 bytes) | nonce (12 bytes) | ciphertext and tag``. The key
id is the first 4 bytes of HMAC-SHA256(key, "citizen key id"), so a key is recognised without storing
it anywhere; decryption looks the key up by id, which is what makes rotation possible (encrypt with
the current key, decrypt with any known one). The associated data binds a value to its purpose and
its row (``"id_number:" + account id``), so a ciphertext copied into another row or column fails.

The blind index is HMAC-SHA256 under a separate key over ``purpose || 0x00 || normalised value``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["BlindIndex", "DecryptionError", "PiiCipher", "key_id", "token_hash"]

_VERSION = 1
_NONCE = 12


class DecryptionError(Exception):
    """Unknown key id, wrong associated data or a corrupted value."""


def key_id(key: bytes) -> bytes:
    return hmac.new(key, b"citizen key id", hashlib.sha256).digest()[:4]


class PiiCipher:
    __slots__ = ("_current", "_current_id", "_keys")

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(current) != 32:
            raise ValueError("AES-256-GCM needs a 32-byte key")
        self._current = AESGCM(current)
        self._current_id = key_id(current)
        self._keys = {key_id(k): AESGCM(k) for k in (*previous, current)}

    def encrypt(self, plaintext: str | bytes, aad: str) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE)
        sealed = self._current.encrypt(nonce, data, aad.encode())
        return bytes([_VERSION]) + self._current_id + nonce + sealed

    def decrypt_bytes(self, blob: bytes, aad: str) -> bytes:
        if len(blob) < 1 + 4 + _NONCE + 16 or blob[0] != _VERSION:
            raise DecryptionError("not a ciphertext of this format")
        aead = self._keys.get(bytes(blob[1:5]))
        if aead is None:
            raise DecryptionError("encrypted under an unknown key")
        try:
            return aead.decrypt(bytes(blob[5 : 5 + _NONCE]), bytes(blob[5 + _NONCE :]), aad.encode())
        except InvalidTag:
            raise DecryptionError("authentication failed") from None

    def decrypt(self, blob: bytes, aad: str) -> str:
        return self.decrypt_bytes(blob, aad).decode()

    def needs_rotation(self, blob: bytes) -> bool:
        return bytes(blob[1:5]) != self._current_id


class BlindIndex:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, purpose: str, normalised: str) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\x00" + normalised.encode(), hashlib.sha256).digest()

    def mobile(self, mobile: str) -> bytes:
        return self("mobile", mobile)

    def id_number(self, id_number: str) -> bytes:
        return self("id_number", id_number)


def token_hash(token: str) -> bytes:
    """Bearer tokens carry 256 random bits, so an unkeyed SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).digest()
