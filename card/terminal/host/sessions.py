"""Terminal sessions in Redis: the session key (encrypted), its id, and the last sequence number.

``card:term:s:<terminal id>`` is a hash ``{sid, key, seq}`` with a TTL; the key is AES-256-GCM
under a key derived from ``card-kek`` (HKDF-SHA256, info ``citizen terminal session``), so a Redis
dump holds no usable key. Any gateway can serve any terminal: the only per-terminal state is here.
Sign-on nonces are remembered for twice the clock tolerance to refuse a replayed sign-on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["Session", "SessionStore"]

_PREFIX: Final = "card:term:s:"
_NONCES: Final = "card:term:n:"
# KEYS[1] session hash; ARGV: sid, sequence, ttl. 1 = advanced, 0 = no such session, -1 = replay.
_ADVANCE: Final = """
local s = redis.call('HMGET', KEYS[1], 'sid', 'seq')
if not s[1] or s[1] ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) <= tonumber(s[2]) then return -1 end
redis.call('HSET', KEYS[1], 'seq', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True, slots=True)
class Session:
    terminal_id: str
    sid: bytes
    key: bytes
    sequence: int

    def __repr__(self) -> str:
        return f"Session({self.terminal_id!r}, sid={self.sid.hex()}, seq={self.sequence})"


class SessionStore:
    def __init__(self, redis: aioredis.Redis, kek: bytes, ttl: int) -> None:
        self._redis = redis
        self._aead = AESGCM(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"citizen terminal session").derive(
                kek
            )
        )
        self._ttl = ttl
        self._advance: Any = redis.register_script(_ADVANCE)

    async def nonce_is_fresh(self, terminal_id: str, nonce: bytes, window: int) -> bool:
        return bool(
            await self._redis.set(_NONCES + terminal_id + ":" + nonce.hex(), b"1", nx=True, ex=window)
        )

    async def open(self, terminal_id: str, key: bytes, sequence: int) -> Session:
        sid = os.urandom(8)
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, key, terminal_id.encode() + sid)
        name = _PREFIX + terminal_id
        pipe: Any = self._redis.pipeline(transaction=True)
        async with pipe:
            pipe.delete(name)
            pipe.hset(name, mapping={"sid": sid.hex(), "key": sealed, "seq": sequence})
            pipe.expire(name, self._ttl)
            await pipe.execute()
        return Session(terminal_id, sid, key, sequence)

    async def load(self, terminal_id: str) -> Session | None:
        values = await self._redis.hmget(_PREFIX + terminal_id, ["sid", "key", "seq"])
        sid_hex, sealed, seq = values
        if not isinstance(sid_hex, bytes) or not isinstance(sealed, bytes) or seq is None:
            return None
        sid = bytes.fromhex(sid_hex.decode())
        try:
            key = self._aead.decrypt(sealed[:12], sealed[12:], terminal_id.encode() + sid)
        except InvalidTag:
            return None
        return Session(terminal_id, sid, key, int(seq))

    async def advance(self, session: Session, sequence: int) -> int:
        """1 when ``sequence`` is accepted, 0 when the session is gone or replaced, -1 on a replay."""
        return int(
            await self._advance(
                keys=[_PREFIX + session.terminal_id], args=[session.sid.hex(), sequence, self._ttl]
            )
        )

    async def close(self, terminal_id: str) -> None:
        await self._redis.delete(_PREFIX + terminal_id)
