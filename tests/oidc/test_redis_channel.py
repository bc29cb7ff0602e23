"""The multiplexed script connection of the token endpoint (``identity.oidc.redis_channel``):
replies go to their callers under concurrency, a flushed script cache falls back to EVAL, an
error reply is raised, and a lost connection fails what is in flight and is made again."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.runtime import Services
from identity.oidc.redis_channel import ScriptChannel

_ECHO = "redis.call('SET', KEYS[1], ARGV[1]) return {tonumber(ARGV[2]), redis.call('GET', KEYS[1])}"


async def test_concurrent_calls_get_their_own_replies(redis_client: Any) -> None:
    channel = ScriptChannel(redis_client)
    script = redis_client.register_script(_ECHO)
    try:
        replies = await asyncio.gather(
            *(channel.run(script, [f"t:chan:{i}"], [f"value-{i}", i]) for i in range(200))
        )
        assert replies == [[i, f"value-{i}".encode()] for i in range(200)]
    finally:
        channel.close()


async def test_flushed_script_cache_falls_back_to_eval(redis_client: Any) -> None:
    channel = ScriptChannel(redis_client)
    script = redis_client.register_script(_ECHO)
    try:
        assert await channel.run(script, ["t:chan:a"], ["x", 1]) == [1, b"x"]
        await redis_client.script_flush()
        assert await channel.run(script, ["t:chan:a"], ["y", 2]) == [2, b"y"]
        bad = redis_client.register_script("return redis.call('INCR', KEYS[1])")
        await redis_client.set("t:chan:text", "not a number")
        with pytest.raises(ResponseError):
            await channel.run(bad, ["t:chan:text"], [])
        assert await channel.run(script, ["t:chan:a"], ["z", 3]) == [3, b"z"]  # still in step
    finally:
        channel.close()


async def test_lost_connection_is_made_again(redis_client: Any) -> None:
    channel = ScriptChannel(redis_client)
    script = redis_client.register_script(_ECHO)
    try:
        assert await channel.run(script, ["t:chan:b"], ["x", 1]) == [1, b"x"]
        assert await redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
        # A script sent before the channel has seen the connection close fails (it is never sent
        # twice: its outcome is unknown); whether it was sent before or after, the next one is
        # answered on a new connection.
        with contextlib.suppress(RedisConnectionError):
            await channel.run(script, ["t:chan:b"], ["y", 2])
        assert await channel.run(script, ["t:chan:b"], ["z", 3]) == [3, b"z"]
    finally:
        channel.close()


async def test_a_late_reply_never_reaches_the_next_caller(redis_client: Any) -> None:
    channel = ScriptChannel(redis_client, timeout=0.2)
    script = redis_client.register_script(_ECHO)
    slow = redis_client.register_script(
        "local t = redis.call('TIME') "
        "while true do local n = redis.call('TIME') "
        "if (n[1] - t[1]) * 1000000 + n[2] - t[2] >= 2000000 then break end end "
        "return 'late'"
    )
    try:
        with pytest.raises(RedisTimeoutError):
            await channel.run(slow, [], [])
        # Redis runs one command at a time: this answers once the slow script has ended and its
        # late reply has been written to the channel's connection.
        assert await redis_client.ping()
        assert await channel.run(script, ["t:chan:c"], ["z", 3]) == [3, b"z"]
    finally:
        channel.close()


def test_on_uvloop(services: Services) -> None:
    """uvicorn runs the app on uvloop, whose transports are not asyncio.Transport subclasses."""
    url = services.settings.redis.url
    assert url is not None

    async def calls() -> list[Any]:
        client = aioredis.from_url(url.reveal())
        channel = ScriptChannel(client)
        try:
            script = client.register_script(_ECHO)
            return await asyncio.gather(*(channel.run(script, [f"t:uv:{i}"], ["v", i]) for i in range(20)))
        finally:
            channel.close()
            await client.aclose()

    assert uvloop.run(calls()) == [[i, b"v"] for i in range(20)]
