"""The framework's additions for the entrance: caller budgets, last-known values, batched reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from integrations.connectors import BreakerState, CachePolicy, Operation
from integrations.connectors.base import call_budget
from integrations.connectors.cache import GetBatcher
from integrations.connectors.registries import _decode_enterprise
from integrations.registries import RegistryEnterprise, UpstreamUnavailable
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import ENTERPRISES

CODE = ENTERPRISES[0].credit_code
PATH = f"/v1/enterprises/{CODE}"


async def test_a_callers_budget_cuts_the_call_short_and_counts_against_the_upstream(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", budget=30.0, breaker_threshold=1)
    await upstreams.set("enterprise", latency_ms=20_000)
    with call_budget(0.1), pytest.raises(UpstreamUnavailable, match="did not answer within"):
        await enterprise.find_enterprise(CODE)
    assert await enterprise.breaker.state() is BreakerState.OPEN


async def test_a_spent_budget_makes_no_call(connect: Callable[..., Any], upstreams: SimulatorControl) -> None:
    enterprise = connect("enterprise", breaker_threshold=1)
    with call_budget(0.0), pytest.raises(UpstreamUnavailable, match="budget is spent"):
        await enterprise.find_enterprise(CODE)
    assert await upstreams.data_requests("enterprise") == 0
    assert await enterprise.breaker.state() is BreakerState.CLOSED  # not the upstream's fault


KEPT: Operation[RegistryEnterprise | None] = Operation(
    "find_enterprise_kept", _decode_enterprise, RegistryEnterprise | None, cache=CachePolicy(ttl=0, keep=3600)
)


async def test_a_kept_entry_is_served_only_when_the_upstream_fails(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", attempts=1, breaker_threshold=100)
    first = await enterprise.fetch(KEPT, PATH, cache_key=CODE)
    assert first.source == "upstream"
    assert (await enterprise.fetch(KEPT, PATH, cache_key=CODE)).source == "upstream"  # past its ttl
    await upstreams.set("enterprise", outage=True)
    fallback = await enterprise.fetch(KEPT, PATH, cache_key=CODE)
    assert (fallback.source, fallback.value) == ("fallback", first.value)
    assert "503" in fallback.detail
    assert await upstreams.data_requests("enterprise") == 2


async def test_reads_in_one_loop_turn_are_one_mget(redis_client: aioredis.Redis) -> None:
    await redis_client.mset({"a": b"1", "b": b"2"})
    batcher = GetBatcher(redis_client)

    async def mgets() -> int:
        stats = await redis_client.info("commandstats")
        return int(stats.get("cmdstat_mget", {}).get("calls", 0))

    before = await mgets()
    values = await asyncio.gather(*(batcher.get(k) for k in ("a", "b", "a", "missing")))
    assert values == [b"1", b"2", b"1", None]
    assert await mgets() - before == 1


async def test_connector_metrics_are_served_by_the_apps_metrics(
    entrance_client: AsyncTestClient[Litestar],
) -> None:
    await entrance_client.get("/api/v1/services")
    body = (await entrance_client.get("/metrics")).text
    assert "citizen_http_requests_total" in body
    assert "citizen_connector_breaker_state" in body
