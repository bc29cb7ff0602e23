"""The circuit breaker shared by every worker through Redis: it opens on failures in a row or on a
failure ratio over enough calls, never on a few scattered errors among many successes; reading
its state reports a breaker past its cool-down as half-open and changes nothing. Driven by counts:
cool-downs are 0 or an hour, no clock is asserted."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from integrations.connectors.breaker import BreakerState, CircuitBreaker

HOUR = 3600.0


async def _succeed(breaker: CircuitBreaker, calls: int) -> None:
    for _ in range(calls):
        assert await breaker.acquire() is None
        await breaker.record_success()


async def test_scattered_failures_among_many_successes_leave_it_closed(redis_client: aioredis.Redis) -> None:
    # The production defaults (5 in a row, 30 s window), four app workers, a busy healthy upstream.
    workers = [CircuitBreaker(redis_client, "social_security", cooldown=HOUR) for _ in range(4)]
    await asyncio.gather(*(_succeed(w, 100) for w in workers))
    for i in range(6):  # more transient errors than the threshold, each from another worker
        await workers[i % 4].record_failure()
        await asyncio.gather(*(_succeed(w, 10) for w in workers))
    assert await workers[0].state() is BreakerState.CLOSED
    assert await workers[1].acquire() is None


async def test_failures_in_a_row_from_any_worker_open_it(redis_client: aioredis.Redis) -> None:
    workers = [CircuitBreaker(redis_client, "health", threshold=3, cooldown=HOUR) for _ in range(3)]
    await _succeed(workers[0], 50)
    assert await workers[0].record_failure() is BreakerState.CLOSED
    assert await workers[1].record_failure() is BreakerState.CLOSED
    await workers[2].record_success()  # breaks the run
    assert await workers[0].record_failure() is BreakerState.CLOSED
    assert await workers[1].record_failure() is BreakerState.CLOSED
    assert await workers[2].record_failure() is BreakerState.OPEN
    assert await workers[0].acquire() == "circuit breaker open"


async def test_failing_every_other_call_opens_it_on_the_ratio(redis_client: aioredis.Redis) -> None:
    breaker = CircuitBreaker(redis_client, "utilities", threshold=5, cooldown=HOUR, min_calls=20)
    for _ in range(9):  # 18 calls, half failed: not enough calls yet to judge
        await breaker.record_success()
        await breaker.record_failure()
    assert await breaker.state() is BreakerState.CLOSED
    await breaker.record_success()
    assert await breaker.record_failure() is BreakerState.OPEN  # 20 calls, 10 failed


async def test_state_after_the_cool_down_is_half_open(redis_client: aioredis.Redis) -> None:
    breaker = CircuitBreaker(redis_client, "bus", threshold=1, cooldown=0)
    assert await breaker.record_failure() is BreakerState.OPEN
    assert await breaker.state() is BreakerState.HALF_OPEN  # the next call is the probe
    assert await redis_client.hget(breaker.key, "state") == b"open"  # a read changes nothing
    assert await breaker.acquire() is None


async def test_reading_the_state_does_not_extend_its_life(redis_client: aioredis.Redis) -> None:
    breaker = CircuitBreaker(redis_client, "bus", threshold=1, cooldown=HOUR)
    await breaker.record_failure()
    await redis_client.pexpire(breaker.key, 60_000)
    assert await breaker.state() is BreakerState.OPEN
    assert 0 < await redis_client.pttl(breaker.key) <= 60_000


async def test_the_catalogue_shows_a_service_past_its_cool_down_as_degraded(
    entrance_client: AsyncTestClient[Litestar], redis_client: aioredis.Redis
) -> None:
    breaker = CircuitBreaker(redis_client, "social_security", threshold=1, cooldown=0)
    await breaker.record_failure()
    listed = (await entrance_client.get("/api/v1/services", params={"category": "social_security"})).json()
    assert [(s["id"], s["availability"]) for s in listed["services"]] == [("social-security", "degraded")]
