"""The Idempotency-Keys we send upstream for our callers, and what each was first used for.

An upstream such as the health authority keeps one space of keys for our whole app (to it we are
one client), so a caller's own key cannot go there as it is: two people who pick the same key (a
naive counter in a client) would share one booking, the second handed the first one's. The key
sent upstream is ``HMAC(key, owner \\0 caller's key)``, under a key derived from the keyring's
``connectors``: one space per person, and not to be guessed from outside.

Each key is remembered for a day with a hash of the request it came with (``SET NX`` in Redis):
the same key with another request is refused before any call (the payments reference, §2.2-2.3:
"store a hash of the request so a mismatch can be detected"). A request the upstream refused as a
business matter (slot taken, unknown card) gives its key back, since validation failures are not
stored. If Redis fails, the check is skipped and the caller's answer is still compared with its
request (``integrations.entrance.appointments``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import redis.asyncio as aioredis
import redis.exceptions

__all__ = ["IdempotencyKeys"]

log = logging.getLogger("citizen.integrations.idempotency")

_KEPT = 86_400  # seconds a key is remembered (the upstreams keep theirs at least as long)

# Give the key back only if it still holds this request's hash (not a later claim's).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class IdempotencyKeys:
    def __init__(self, client: aioredis.Redis, secret: bytes) -> None:
        if not secret:
            raise ValueError("upstream Idempotency-Keys need a secret key")
        self._redis = client
        self._secret = secret
        self._release = client.register_script(_RELEASE)

    def upstream_key(self, owner: str, key: str) -> str:
        """The key sent upstream for ``owner``'s (a person's id) own ``key``."""
        return hmac.new(self._secret, f"{owner}\x00{key}".encode(), hashlib.sha256).hexdigest()

    async def claim(self, upstream_key: str, request: bytes) -> bool:
        """True if ``upstream_key`` is new, or was first used with this same ``request``."""
        digest = hashlib.sha256(request).hexdigest()
        name = _name(upstream_key)
        try:
            if await self._redis.set(name, digest, nx=True, ex=_KEPT):
                return True
            first = await self._redis.get(name)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("idempotency key not checked", extra={"error": exc.__class__.__name__})
            return True
        if first is None:  # expired in between: free again
            return True
        return (first.decode() if isinstance(first, bytes) else str(first)) == digest

    async def release(self, upstream_key: str, request: bytes) -> None:
        """Forget ``upstream_key``'s claim for ``request``: the upstream refused that request."""
        try:
            await self._release(keys=[_name(upstream_key)], args=[hashlib.sha256(request).hexdigest()])
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("idempotency key not released", extra={"error": exc.__class__.__name__})


def _name(upstream_key: str) -> str:
    return f"citizen:idempotency:{upstream_key}"
