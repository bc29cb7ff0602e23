"""Where pushed authorization requests (RFC 9126) wait in Redis, and how long.

A pushed request must be *used* within ``par_ttl`` seconds (≤ 60 by default). Its first use at
the authorization endpoint gives it the interaction's lifetime instead, once: a person who takes
longer than ``par_ttl`` to log in (an SMS on its way) still completes, and opening the
``request_uri`` again does not prolong it (a marker key records the first use). The completion
deletes it (``authorize.issue_code``): a single ``DEL``, so of two parallel completions only one
succeeds. The key includes the client id, so a ``request_uri`` only works for the client that
pushed it.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec
import redis.asyncio as aioredis

__all__ = ["PushedRequests"]

# KEYS[1] the pushed request, KEYS[2] its first-use marker; ARGV[1] the interaction's lifetime.
_OPEN = """
local v = redis.call('GET', KEYS[1])
if not v then return false end
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return v
"""


class PushedRequests:
    def __init__(self, redis: aioredis.Redis, *, par_ttl: int, interaction_ttl: int) -> None:
        self.redis = redis
        self.par_ttl = par_ttl
        self.interaction_ttl = interaction_ttl
        self._open = redis.register_script(_OPEN)

    @staticmethod
    def key(client_id: str, reference: str) -> str:
        return f"oidc:par:{client_id}:{reference[:64]}"

    async def push(self, client_id: str, params: dict[str, str]) -> str:
        """Keep a validated request for ``par_ttl`` seconds; returns its reference."""
        reference = secrets.token_urlsafe(32)
        await self.redis.set(self.key(client_id, reference), msgspec.json.encode(params), ex=self.par_ttl)
        return reference

    async def open(self, client_id: str, reference: str) -> dict[str, str] | None:
        """The pushed parameters, or None if unknown, expired, used or another client's. The first
        open extends the request's life to the interaction's; later ones leave it as it is."""
        key = self.key(client_id, reference)
        raw: Any = await self._open(keys=[key, key + ":opened"], args=[self.interaction_ttl])
        if raw is None:
            return None
        params: dict[str, str] = msgspec.json.decode(raw)
        return params
