"""Text form of the QR payload: Base45 (RFC 9285).

Base45 uses exactly the 45-character alphanumeric set of QR codes (ISO/IEC 18004 §7.4.4), which the
symbol stores at 5.5 bits per character, so 2 bytes -> 3 characters cost 16.5 bits of symbol space
(versus 20 bits for base32 and 24 for base64 in byte mode). A 191-byte payload is 287 characters.
The decoder is strict (RFC 9285 §6): any other character, a length of 3k+1, or a group whose value
exceeds 65535 (or 255 for a final pair) is an error, so each valid text has exactly one payload.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["base45_decode", "base45_encode", "decode_qr_text", "encode_qr_text"]

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"  # RFC 9285 §4, values 0..44
_INVALID: Final = 0xFF
# bytes.translate table: ASCII code -> base45 value, or _INVALID for characters outside the alphabet.
_DECODE_TABLE: Final = bytes(_ALPHABET.find(chr(i)) if chr(i) in _ALPHABET else _INVALID for i in range(256))


def base45_encode(data: bytes) -> str:
    out: list[str] = []
    a = _ALPHABET
    for i in range(0, len(data) - 1, 2):  # each byte pair n = a*256 + b -> c + 45*d + 45^2*e (§4.2)
        n = (data[i] << 8) | data[i + 1]
        e, rest = divmod(n, 2025)
        d, c = divmod(rest, 45)
        out += (a[c], a[d], a[e])
    if len(data) % 2:  # a final single byte -> two characters
        d, c = divmod(data[-1], 45)
        out += (a[c], a[d])
    return "".join(out)


def base45_decode(text: str) -> bytes:
    """Decode strictly; raises ``ValueError``."""
    if len(text) % 3 == 1:
        raise ValueError("base45: impossible length")
    try:
        values = text.encode("ascii").translate(_DECODE_TABLE)
    except UnicodeEncodeError:
        raise ValueError("base45: character outside the alphabet") from None
    if _INVALID in values:
        raise ValueError("base45: character outside the alphabet")
    full = len(values) - len(values) % 3
    # Each group c, d, e -> n = c + 45*d + 45^2*e, written as 2 bytes big-endian (RFC 9285 §4.2).
    groups = [
        c + d * 45 + e * 2025
        for c, d, e in zip(values[0:full:3], values[1:full:3], values[2:full:3], strict=True)
    ]
    if groups and max(groups) > 0xFFFF:
        raise ValueError("base45: group out of range")
    out = struct.pack(f">{len(groups)}H", *groups)
    if full < len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise ValueError("base45: final pair out of range")
        out += bytes((n,))
    return out


def encode_qr_text(payload: bytes) -> str:
    """Text to put in the QR symbol (alphanumeric mode)."""
    return base45_encode(payload)


def decode_qr_text(text: str) -> bytes:
    """Inverse of :func:`encode_qr_text`; raises ``ValueError``."""
    return base45_decode(text)
