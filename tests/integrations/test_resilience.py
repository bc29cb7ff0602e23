"""Each fault control against the connectors: budget, retries, malformed answers, the breaker, the cache.

No clock is asserted: the breaker is driven by counts (its cool-down is 0 or an hour), and the
upstream calls are counted by the simulator itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from integrations.connectors import BreakerState, CachePolicy, Operation, metrics
from integrations.connectors.registries import _decode_enterprise
from integrations.registries import RegistryEnterprise, UpstreamMalformed, UpstreamUnavailable
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import DEMO_CITIZEN, ENTERPRISES

CODE = ENTERPRISES[0].credit_code


def _sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _retries() -> float:
    return _sample("citizen_connector_retries_total", connector="population", operation="verify_person")


def _hits() -> float:
    labels = {"connector": "enterprise", "operation": "find_enterprise", "result": "hit"}
    return _sample("citizen_connector_cache_total", **labels)


async def test_an_upstream_slower_than_the_budget_is_unavailable_within_the_budget(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", budget=0.2)
    await upstreams.set("enterprise", latency_ms=20_000)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match=r"within 0\.2 s"):
        await enterprise.find_enterprise(CODE)
    assert time.monotonic() - started < 10  # the budget cut it short, far before the upstream's 20 s


async def test_errors_are_retried_then_succeed(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    population = connect("population", attempts=3)
    await population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)  # the token first
    await upstreams.reset("population")
    await upstreams.set("population", fail_next=2)
    before = _retries()
    answer = await population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)
    assert answer.result == "match"
    view = await upstreams.view("population")
    # two 500s, then a 401 (the reset forgot the token), then the answer: only two were retries
    assert _retries() - before == 2
    assert view.data_requests == 4


async def test_errors_beyond_the_attempts_fail_as_unavailable(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", attempts=3, breaker_threshold=100)
    await upstreams.set("enterprise", error_rate=1.0)
    with pytest.raises(UpstreamUnavailable, match="answered 500"):
        await enterprise.find_enterprise(CODE)
    assert await upstreams.data_requests("enterprise") == 3


async def test_every_kind_of_malformed_answer_is_upstream_malformed_and_not_retried(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    population = connect("population", breaker_threshold=100)
    enterprise = connect("enterprise", breaker_threshold=100)
    await upstreams.set("population", malformed_rate=1.0, seed=7)
    await upstreams.set("enterprise", malformed_rate=1.0, seed=7)
    for _ in range(10):  # the simulator picks among five broken answers
        with pytest.raises(UpstreamMalformed):
            await population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)
        with pytest.raises(UpstreamMalformed):
            await enterprise.find_enterprise(CODE)
    assert await upstreams.data_requests("population") == 10
    assert await upstreams.data_requests("enterprise") == 10


async def test_an_outage_opens_the_breaker_and_then_no_call_reaches_the_upstream(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", attempts=1, breaker_threshold=3, breaker_cooldown=3600)
    await upstreams.set("enterprise", outage=True)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable, match="answered 503"):
            await enterprise.find_enterprise(CODE)
    assert await enterprise.breaker.state() is BreakerState.OPEN
    seen = (await upstreams.view("enterprise")).requests
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
            await enterprise.find_enterprise(CODE)
    assert (await upstreams.view("enterprise")).requests == seen


async def test_after_recovery_one_probe_closes_the_breaker(
    connect: Callable[..., Any], upstreams: SimulatorControl, redis_client: aioredis.Redis
) -> None:
    enterprise = connect("enterprise", attempts=1, breaker_threshold=2, breaker_cooldown=0)
    await upstreams.set("enterprise", outage=True)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await enterprise.find_enterprise(CODE)
    # Open, and with a cool-down of 0 the next call is already the probe: read as half-open.
    assert await enterprise.breaker.state() is BreakerState.HALF_OPEN
    # Still down: the probe fails and the breaker opens again.
    with pytest.raises(UpstreamUnavailable):
        await enterprise.find_enterprise(CODE)
    assert await redis_client.hget(enterprise.breaker.key, "state") == b"open"
    await upstreams.set("enterprise", outage=False)
    assert await enterprise.find_enterprise(CODE) is not None  # the probe succeeds
    assert await enterprise.breaker.state() is BreakerState.CLOSED


async def test_half_open_lets_exactly_one_probe_through(
    connect: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    enterprise = connect("enterprise", breaker_threshold=1, breaker_cooldown=0)
    breaker = enterprise.breaker
    assert await breaker.record_failure() is BreakerState.OPEN
    assert await breaker.acquire() is None  # the probe
    assert await breaker.acquire() == "circuit breaker half_open"  # everyone else waits
    assert await breaker.record_success() is BreakerState.CLOSED
    assert await breaker.acquire() is None


async def test_the_breaker_is_shared_by_connectors_on_the_same_redis(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    first = connect("enterprise", attempts=1, breaker_threshold=2, breaker_cooldown=3600)
    second = connect("enterprise", attempts=1, breaker_threshold=2, breaker_cooldown=3600)
    await upstreams.set("enterprise", outage=True)
    for _ in range(2):
        with pytest.raises(UpstreamUnavailable):
            await first.find_enterprise(CODE)
    await upstreams.reset("enterprise")  # healthy again, and its counts are zero
    with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
        await second.find_enterprise(CODE)
    assert await upstreams.data_requests("enterprise") == 0
    assert await second.breaker.state() is BreakerState.OPEN


async def test_a_cached_answer_makes_no_upstream_call(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise")
    first = await enterprise.lookup(CODE)
    assert first.source == "upstream"
    hits = _sample(
        "citizen_connector_cache_total", connector="enterprise", operation="find_enterprise", result="hit"
    )
    for _ in range(5):
        again = await enterprise.lookup(CODE)
        assert again.source == "cache"
        assert again.value == first.value
    assert await upstreams.data_requests("enterprise") == 1
    assert (
        _sample(
            "citizen_connector_cache_total", connector="enterprise", operation="find_enterprise", result="hit"
        )
        - hits
        == 5
    )
    # Another connector instance (another worker) reads the same cache.
    assert (await connect("enterprise").lookup(CODE)).source == "cache"
    assert await upstreams.data_requests("enterprise") == 1


async def test_unknown_codes_are_cached_too(connect: Callable[..., Any], upstreams: SimulatorControl) -> None:
    enterprise = connect("enterprise")
    for _ in range(3):
        assert await enterprise.find_enterprise("91110000MA00000000") is None
    assert await upstreams.data_requests("enterprise") == 1


STALE_AT_ONCE: Operation[RegistryEnterprise | None] = Operation(
    "find_enterprise_swr", _decode_enterprise, RegistryEnterprise | None, cache=CachePolicy(ttl=0, stale=3600)
)


async def test_stale_data_is_served_with_its_age_while_it_is_refreshed(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise")
    path = f"/v1/enterprises/{CODE}"
    fresh = await enterprise.fetch(STALE_AT_ONCE, path, cache_key=CODE)
    assert fresh.source == "upstream"
    stale = await enterprise.fetch(STALE_AT_ONCE, path, cache_key=CODE)
    assert stale.stale
    assert stale.age >= 0
    assert stale.value == fresh.value
    await enterprise.settle()
    assert await upstreams.data_requests("enterprise") == 2  # the background refresh
    # With the upstream dead, the stale entry is still served at once; the refresh fails quietly.
    await upstreams.set("enterprise", outage=True)
    assert (await enterprise.fetch(STALE_AT_ONCE, path, cache_key=CODE)).stale
    await enterprise.settle()


async def test_no_id_number_appears_in_redis_keys(
    connect: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    social = connect("social_security")
    number = DEMO_CITIZEN.social_security_number or ""
    assert (await social.insured_record(number)).value is not None
    keys = []
    for key in await redis_client.keys("*"):
        assert isinstance(key, bytes)  # the client does not decode replies
        keys.append(key.decode())
    assert keys
    assert not any(number in key or DEMO_CITIZEN.id_number in key for key in keys)
