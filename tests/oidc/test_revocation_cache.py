"""The per-worker memory of token liveness (``identity.oidc.revocation``) over a real Redis: two
caches stand for two workers. What one publishes, the other forgets; a read that raced with an
invalidation is not kept; nothing is remembered while the subscription is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import redis.asyncio as aioredis

from identity.oidc.revocation import RevocationCache


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for a pub/sub delivery; the bound only keeps a broken run from hanging."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), 30)


async def test_invalidations_reach_the_other_worker(redis_client: aioredis.Redis) -> None:
    one, two = RevocationCache(redis_client, ttl=600), RevocationCache(redis_client, ttl=600)
    forgotten: list[str] = []
    two.client_listeners.append(forgotten.append)
    # Before subscribing, nothing is remembered.
    two.remember(two.generation, jti="j1", gid="g1", ctx=b"{}")
    assert two.grant("g1") == (False, None) and not two.jti_live("j1")
    tasks = [asyncio.create_task(one.run()), asyncio.create_task(two.run())]
    try:
        await _until(lambda: one.healthy and two.healthy)
        two.remember(two.generation, jti="j1", gid="g1", ctx=b"{}")
        two.remember(two.generation, jti=None, gid="gone", ctx=None)
        assert two.grant("g1") == (True, b"{}") and two.jti_live("j1")
        assert two.grant("gone") == (True, None)  # a revoked grant is remembered as revoked

        read_before = two.generation  # a read in flight while the grant is revoked elsewhere
        await one.publish("g:g1")
        await _until(lambda: two.grant("g1") == (False, None))
        two.remember(read_before, jti=None, gid="g1", ctx=b"{}")
        assert two.grant("g1") == (False, None)  # the older read does not come back

        one.remember(one.generation, jti="j1", gid=None, ctx=None)
        await two.publish("j:j1")
        assert not two.jti_live("j1")  # the publisher forgets before it answers
        await _until(lambda: not one.jti_live("j1"))

        await one.publish("c:partner-a")
        await _until(lambda: forgotten == ["partner-a"])
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # Down: the memory is emptied, every client copy dropped, and nothing new is kept.
    assert not two.healthy and two.grant("gone") == (False, None) and forgotten[-1] == "*"
    two.remember(two.generation, jti="j2", gid="g2", ctx=b"{}")
    assert two.grant("g2") == (False, None) and not two.jti_live("j2")
