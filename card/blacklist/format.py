"""The blacklist's wire form (card-protocol.md §6.1): one binary layout for snapshots and deltas.

Big-endian; every list sorted ascending, each value an unsigned 64-bit integer (8 bytes):

====  ====  =================================================================================
 off   len  field
====  ====  =================================================================================
   0     1  format, ``0x01``
   1     1  flags: bit 0 = full snapshot (replace everything), other bits 0
   2     8  from version (0 for a snapshot)
  10     8  to version (the list's version after applying this)
  18     4  valid from, UTC epoch seconds
  22    16  counts: card adds, card removes, authorisation adds, authorisation removes (4 each)
  38     …  the four lists in that order
====  ====  =================================================================================

Cards are listed by card number (as an integer); device authorisations by
:func:`card.qr.payload.authorisation_id` (63 bits of SHA-256 over the 123 authorisation bytes).
A delta is applied as: remove the removes, then add the adds. The platform signs the encoded bytes
(``CardKeyStore.sign_document``); terminals verify with the DOC_SIGN public keys.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["FORMAT", "BlacklistDelta", "decode_delta", "encode_delta"]

FORMAT: Final = 0x01
_HEADER: Final = struct.Struct(">BBQQIIIII")
FULL: Final = 0x01


@dataclass(frozen=True, slots=True)
class BlacklistDelta:
    """A snapshot (``full``) or a delta; the four lists are raw concatenations of 8-byte big-endian values."""

    full: bool
    from_version: int
    to_version: int
    valid_from: datetime
    card_adds: bytes
    card_removes: bytes
    auth_adds: bytes
    auth_removes: bytes

    @staticmethod
    def values(raw: bytes) -> list[int]:
        return list(struct.unpack(f">{len(raw) // 8}Q", raw))

    @property
    def counts(self) -> tuple[int, int, int, int]:
        return (
            len(self.card_adds) // 8,
            len(self.card_removes) // 8,
            len(self.auth_adds) // 8,
            len(self.auth_removes) // 8,
        )


def encode_delta(delta: BlacklistDelta) -> bytes:
    header = _HEADER.pack(
        FORMAT,
        FULL if delta.full else 0,
        delta.from_version,
        delta.to_version,
        int(delta.valid_from.timestamp()),
        *delta.counts,
    )
    return b"".join((header, delta.card_adds, delta.card_removes, delta.auth_adds, delta.auth_removes))


def decode_delta(data: bytes) -> BlacklistDelta:
    """Parse (not verify) an encoded delta; ``ValueError`` on any malformation."""
    if len(data) < _HEADER.size:
        raise ValueError("blacklist: truncated header")
    fmt, flags, from_v, to_v, valid_from, *counts = _HEADER.unpack_from(data)
    if fmt != FORMAT or flags & ~FULL:
        raise ValueError("blacklist: unknown format or flags")
    if len(data) != _HEADER.size + 8 * sum(counts):
        raise ValueError("blacklist: length does not match the counts")
    parts: list[bytes] = []
    offset = _HEADER.size
    for count in counts:
        parts.append(bytes(data[offset : offset + 8 * count]))
        offset += 8 * count
    return BlacklistDelta(bool(flags & FULL), from_v, to_v, datetime.fromtimestamp(valid_from, UTC), *parts)
