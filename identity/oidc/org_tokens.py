"""The organisation access tokens an account holds, so that losing a role ends them at once.

Token exchange (``exchange.py``, RFC 8693) issues a person an access token acting for an
organisation, with the roles the person holds there at that moment (``org`` and ``roles``
claims). A self-contained JWT would keep those roles until it expires (``access_token_ttl``),
after the representative suspended or removed the agent or took a role away. So every such token
is remembered per account in Redis (``oidc:orgat:<account>``: a sorted set of ``<org>|<jti>``
scored by the token's expiry), and when identity drops an account's acting context for an
organisation (``SessionStore.clear_context``, after an agent change) each of those tokens still
live is revoked on its own, like RFC 7009 revocation (``GrantStore.revoke_access_token``: the
``oidc:atrev:<jti>`` mark and the workers' caches told at once). The person's own token and grant
stay: they still are themselves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["OrgTokens"]

_SLACK = 5  # seconds past the last expiry the set is kept


def _key(account_id: uuid.UUID) -> str:
    return f"oidc:orgat:{account_id}"


# Add the token, drop the expired ones, and keep the set until its last token expires: the expiry
# only ever moves later (a token issued under a shorter access_token_ttl after a restart must not
# cut the older ones' entries short; EXPIREAT GT would say so, but needs Redis 7, the embedded 6.2).
_REMEMBER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], math.floor(tonumber(last[2])) + tonumber(ARGV[4]))
return 1
"""


class OrgTokens:
    def __init__(self, redis: Any, revoke: Callable[[str, int], Awaitable[None]]) -> None:
        self.redis = redis
        self._revoke = revoke  # GrantStore.revoke_access_token(jti, exp)
        self._remember = redis.register_script(_REMEMBER)

    async def remember(self, account_id: uuid.UUID, org: uuid.UUID, jti: str, exp: int) -> None:
        """Called before the token is answered: a token the set does not hold is never handed out."""
        await self._remember(keys=[_key(account_id)], args=[f"{org}|{jti}", exp, int(time.time()), _SLACK])

    async def revoke(self, account_id: uuid.UUID, org: uuid.UUID | None) -> int:
        """Revoke the account's live tokens for ``org`` (every organisation with None): how many."""
        key = _key(account_id)
        now = int(time.time())
        held = await self.redis.zrangebyscore(key, now, "+inf", withscores=True)
        revoked = []
        for member, exp in held:
            text = member.decode() if isinstance(member, bytes) else str(member)
            token_org, _, jti = text.partition("|")
            if org is None or token_org == str(org):
                await self._revoke(jti, int(exp))
                revoked.append(member)
        if revoked:
            await self.redis.zrem(key, *revoked)
        return len(revoked)
