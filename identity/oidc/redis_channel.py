"""The token endpoint's Lua scripts over one lean, multiplexed Redis connection.

A refresh and a code exchange are each one script call (``grants.py``), but redis-py's asyncio
client spent about as much CPU around that one round trip as the two ES256 signatures of the
answer: a pool checkout and return, a health check, a retry wrapper, ``wait_for``, command
packing in Python. The scripts go instead over the same kind of lean connection the app's hot
reads use (``backend.redis_reads``): the calls of every concurrent request share one socket,
commands of one event-loop turn leave in one write, replies are matched in order. Redis runs each
script atomically either way; this changes only how the bytes travel.

A script is sent **once** (``once``): after a lost connection its reply is lost with it, and a
retry could run it twice (a refresh token consumed twice reads as reuse and revokes the family).
The caller gets ``ConnectionError`` or ``TimeoutError`` (503 to the client, who retries the
grant: a consumed token is then refused, as after any lost answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from backend.redis_reads import Arg, ClientReads, LeanReads, Reads

__all__ = ["ScriptChannel"]


class ScriptChannel:
    """``EVALSHA`` (``EVAL`` when the server does not know the script yet) on a lean connection
    of its own, made from the settings of ``redis``'s pool on first use (``redis``'s own
    commands for a connection kind the lean one does not speak, such as TLS)."""

    def __init__(self, redis: aioredis.Redis, *, timeout: float | None = None) -> None:
        self._lean = LeanReads(redis, timeout=timeout) if LeanReads.supports(redis) else None
        self._commands: Reads = self._lean if self._lean is not None else ClientReads(redis)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script's reply; a Redis error reply is raised as ``ResponseError``."""
        try:
            return await self._commands.once("EVALSHA", script.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        # Not executed: the server lost its script cache (a restart, SCRIPT FLUSH).
        source = script.script if isinstance(script.script, str | bytes) else bytes(script.script)
        return await self._commands.once("EVAL", source, len(keys), *keys, *args)

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
