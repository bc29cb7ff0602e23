"""Time-ordered transfer ids (UUIDv7 layout, RFC 9562 §5.7).

TigerBeetle recommends time-based ids: new rows land at the right edge of the primary-key
index instead of on random pages, which keeps batched inserts fast.
"""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_id"]


def new_id() -> uuid.UUID:
    """A UUIDv7: 48-bit Unix milliseconds, version 7, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)
