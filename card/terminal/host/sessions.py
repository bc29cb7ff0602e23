"""Terminal sessions in Redis: the session key (encrypted), its id, the TMK version, the last sequence.

``card:term:s:<terminal id>`` is a hash ``{sid, key, seq, ver}`` with a TTL; the key is AES-256-GCM
under a key derived from ``card-kek`` (HKDF-SHA256, info ``citizen terminal session``), so a Redis
dump holds no usable key. Any gateway can serve any terminal: the only per-terminal state is here.
``ver`` is the version of the terminal master key the session was signed on with: the host refuses
a session whose version is no longer the terminal's (re-keyed). It is bound into the key's AAD, so
an old session cannot be passed off as a newer one by rewriting the field, and a session written
before the field existed does not decrypt (the terminal signs on again).
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

__all__ = ["Session", "SessionStore", "end_session"]

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
# KEYS[1] session hash; ARGV[1] sid. Deletes the session only if it is still that one, so ending a
# refused session never ends a newer one the terminal has meanwhile signed on (on another gateway).
_END: Final = """
if redis.call('HGET', KEYS[1], 'sid') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Session:
    terminal_id: str
    sid: bytes
    key: bytes
    sequence: int
    tmk_version: int

    def __repr__(self) -> str:
        return (
            f"Session({self.terminal_id!r}, sid={self.sid.hex()}, seq={self.sequence}, "
            f"tmk_version={self.tmk_version})"
        )


def _aad(terminal_id: str, sid: bytes, tmk_version: int) -> bytes:
    return terminal_id.encode() + sid + tmk_version.to_bytes(4, "big")


async def end_session(redis: aioredis.Redis, terminal_id: str) -> None:
    """End a terminal's session, whatever it is (the registry's disable and re-key)."""
    await redis.delete(_PREFIX + terminal_id)


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
        self._end: Any = redis.register_script(_END)

    async def nonce_is_fresh(self, terminal_id: str, nonce: bytes, window: int) -> bool:
        return bool(
            await self._redis.set(_NONCES + terminal_id + ":" + nonce.hex(), b"1", nx=True, ex=window)
        )

    async def open(self, terminal_id: str, key: bytes, sequence: int, tmk_version: int) -> Session:
        sid = os.urandom(8)
        nonce = os.urandom(12)
        sealed = nonce + self._aead.encrypt(nonce, key, _aad(terminal_id, sid, tmk_version))
        name = _PREFIX + terminal_id
        pipe: Any = self._redis.pipeline(transaction=True)
        async with pipe:
            pipe.delete(name)
            pipe.hset(name, mapping={"sid": sid.hex(), "key": sealed, "seq": sequence, "ver": tmk_version})
            pipe.expire(name, self._ttl)
            await pipe.execute()
        return Session(terminal_id, sid, key, sequence, tmk_version)

    async def load(self, terminal_id: str) -> Session | None:
        values = await self._redis.hmget(_PREFIX + terminal_id, ["sid", "key", "seq", "ver"])
        sid_hex, sealed, seq, ver = values
        if not isinstance(sid_hex, bytes) or not isinstance(sealed, bytes) or seq is None or ver is None:
            return None
        sid = bytes.fromhex(sid_hex.decode())
        tmk_version = int(ver)
        try:
            key = self._aead.decrypt(sealed[:12], sealed[12:], _aad(terminal_id, sid, tmk_version))
        except InvalidTag:
            return None
        return Session(terminal_id, sid, key, int(seq), tmk_version)

    async def advance(self, session: Session, sequence: int) -> int:
        """1 when ``sequence`` is accepted, 0 when the session is gone or replaced, -1 on a replay."""
        return int(
            await self._advance(
                keys=[_PREFIX + session.terminal_id], args=[session.sid.hex(), sequence, self._ttl]
            )
        )

    async def end(self, session: Session) -> None:
        """End ``session`` if it is still the terminal's current one."""
        await self._end(keys=[_PREFIX + session.terminal_id], args=[session.sid.hex()])

    async def close(self, terminal_id: str) -> None:
        await end_session(self._redis, terminal_id)
