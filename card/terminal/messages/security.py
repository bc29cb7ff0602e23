"""Link cryptography of the terminal protocol (docs/terminal-protocol.md §3).

* Message MAC: AES-128-CMAC (NIST SP 800-38B; RFC 4493) truncated to the leftmost 8 bytes
  (SP 800-38B §5.4 permits tags of 64 bits or more for this message rate). CMAC rather than the
  ISO 9797-1 algorithm 3 retail MAC of ``card.crypto``: one C call per message instead of one DES
  call per 8-byte block, with a 128-bit key and a published security bound.
* Keys from the terminal master key (TMK, 16 bytes, injected at registration): one CMAC block of
  the NIST SP 800-108 KDF in counter mode, ``K = CMAC(TMK, i(1) || label || 00 || L(2))`` with
  ``i = 01`` and ``L = 0080`` (128 bits); labels ``"citizen sign-on"`` (sign-on MAC key) and
  ``"citizen key wrap"`` (key-encryption key).
* Session key: 16 random bytes per sign-on, sent wrapped with AES key wrap (RFC 3394) under the
  key-encryption key (24 bytes on the wire) and checked by ``KCV = CMAC(session key, 00×16)[:3]``.
"""

from __future__ import annotations

import hmac
from typing import Final

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from card.terminal.spec import MAC_SIZE

__all__ = [
    "KEY_SIZE",
    "InvalidUnwrap",
    "key_check_value",
    "message_mac",
    "record_key",
    "record_mac",
    "sign_on_keys",
    "unwrap_session_key",
    "verify_message_mac",
    "wrap_session_key",
]

KEY_SIZE: Final = 16
_SIGN_ON_LABEL: Final = b"citizen sign-on"
_KEY_WRAP_LABEL: Final = b"citizen key wrap"
_RECORD_LABEL: Final = b"citizen record"
RECORD_MAC_SIZE: Final = 4


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def message_mac(key: bytes, data: bytes) -> bytes:
    """The 8-byte MAC that closes every message: AES-CMAC over ``data``, leftmost 8 bytes."""
    return _cmac(key, data)[:MAC_SIZE]


def verify_message_mac(key: bytes, data: bytes, mac: bytes) -> bool:
    return hmac.compare_digest(message_mac(key, data), mac)


def _kdf(tmk: bytes, label: bytes) -> bytes:
    if len(tmk) != KEY_SIZE:
        raise ValueError("a terminal master key is 16 bytes")
    return _cmac(tmk, b"\x01" + label + b"\x00" + b"\x00\x80")


def sign_on_keys(tmk: bytes) -> tuple[bytes, bytes]:
    """``(sign-on MAC key, key-encryption key)`` derived from the terminal master key."""
    return _kdf(tmk, _SIGN_ON_LABEL), _kdf(tmk, _KEY_WRAP_LABEL)


def record_key(tmk: bytes) -> bytes:
    """The reader's record-MAC key (label ``"citizen record"``): it outlives sessions, so a record
    taken offline under one session and uploaded under another still verifies."""
    return _kdf(tmk, _RECORD_LABEL)


def record_mac(key: bytes, data: bytes) -> bytes:
    """The reader's own 4-byte MAC over a QR tap: AES-CMAC over the §5.4 data, leftmost 4 bytes."""
    return _cmac(key, data)[:RECORD_MAC_SIZE]


def wrap_session_key(kek: bytes, session_key: bytes) -> bytes:
    return aes_key_wrap(kek, session_key)


def unwrap_session_key(kek: bytes, wrapped: bytes) -> bytes:
    """Raises :class:`InvalidUnwrap` when the wrapping was not made under ``kek``."""
    return aes_key_unwrap(kek, wrapped)


def key_check_value(key: bytes) -> bytes:
    return _cmac(key, bytes(16))[:3]
