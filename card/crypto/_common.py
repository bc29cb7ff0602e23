"""Byte encodings shared by every card computation, the transaction types, and MAC comparison.

Conventions are those of card-protocol.md §0: hex and integers big-endian, amounts in fen as 4-byte
binary, DT7 = 7-byte BCD ``YYYYMMDDhhmmss``, ``~X`` = X XOR FF…FF.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from enum import IntEnum

__all__ = [
    "TransactionType",
    "encode_amount",
    "encode_bcd",
    "encode_dt7",
    "encode_uint",
    "invert",
    "require_length",
    "verify_mac",
    "xor",
]


class TransactionType(IntEnum):
    """Transaction type byte used in MAC1 / MAC2 / TAC inputs and SFI 0x18 records (§1.2)."""

    ED_LOAD = 0x01  # electronic passbook load; the published load vector uses it (§1.5)
    EP_LOAD = 0x02  # electronic purse load (圈存)
    ED_PURCHASE = 0x05  # electronic passbook purchase [blog]
    EP_PURCHASE = 0x06  # electronic purse purchase (消费)
    CAPP_PURCHASE = 0x09  # compound purchase (复合消费), §1.7


def require_length(value: bytes, length: int, *, name: str = "value") -> bytes:
    """Return ``value`` as ``bytes`` after checking that it is exactly ``length`` bytes long."""
    if type(value) is bytes and len(value) == length:  # the usual case, first: every TAC checks several
        return value
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
    return value


def encode_uint(value: int, length: int, *, name: str = "value") -> bytes:
    """Unsigned big-endian binary of exactly ``length`` bytes (§0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < 1 << (8 * length):
        raise ValueError(f"{name} must fit in {length} unsigned bytes, got {value}")
    return value.to_bytes(length, "big")


def encode_amount(fen: int, *, name: str = "amount") -> bytes:
    """An amount in fen as 4-byte big-endian binary (§0; §1.3 ``amount(4)``)."""
    return encode_uint(fen, 4, name=name)


def encode_bcd(value: int, length: int, *, name: str = "value") -> bytes:
    """``value`` as packed BCD, left-padded with zero digits to ``length`` bytes (EMV format n)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    digits = 2 * length
    if not 0 <= value < 10**digits:
        raise ValueError(f"{name} must fit in {digits} BCD digits, got {value}")
    return bytes.fromhex(f"{value:0{digits}d}")


def encode_dt7(moment: datetime) -> bytes:
    """DT7: 7-byte BCD ``YYYYMMDDhhmmss`` of the wall-clock fields of ``moment`` (§0).

    Cards and PSAMs keep local (Beijing) wall-clock time; convert an aware datetime to that zone
    before encoding. The time zone itself is not part of the encoding.
    """
    return bytes.fromhex(
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )


def xor(left: bytes, right: bytes) -> bytes:
    """Byte-wise XOR of two strings of the same length."""
    if len(left) != len(right):
        raise ValueError(f"cannot XOR {len(left)} bytes with {len(right)} bytes")
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def invert(data: bytes) -> bytes:
    """``~X`` = X XOR FF…FF (§0)."""
    return bytes(b ^ 0xFF for b in data)


def verify_mac(expected: bytes, actual: bytes) -> bool:
    """Constant-time comparison of a computed MAC / TAC / cryptogram with a received one.

    An empty ``expected`` never verifies, so a truncated record cannot pass by comparing empty
    strings; different lengths are simply unequal.
    """
    if not expected:
        return False
    return hmac.compare_digest(bytes(expected), bytes(actual))
