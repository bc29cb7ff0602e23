"""The home page (issue 8): requests/s and p50/p99 with a cold and a warm cache, and with one
upstream dead (social security) and one slow (bus, 5 s against a 0.25 s tile budget).

``python -m bench.integrations_home`` (or ``citizen bench integrations_home``). One worker, the
simulators in their own process, a demo citizen made over the public API (register, verify,
card). Baselines from the same run: ``/api/v1/platform/status`` (one PostgreSQL round trip) for
the request rate (and, beside it, ``/api/v1/messages/unread-count``: what any signed-in page with
one round trip costs), the configured tile budget for the p99. Targets: >= 3,000 warm home
requests/s on one worker; p99 <= the slowest tile budget + 10 ms with one upstream dead and one
slow; no upstream call during the warm run (fresh cached tiles).
Environment: ``HOME_BENCH_SECONDS`` (default 10, each wrk run), ``HOME_BENCH_CONNECTIONS`` (default
32), ``HOME_BENCH_COLD_REQUESTS`` (default 200, sequential, every cache emptied before each).
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import time
from typing import Any

import httpx
import redis.asyncio as aioredis

from backend.runtime import migrate_database
from bench._harness import emit, ensure_wrk, service_env, services, uvicorn_server, wrk
from integrations.simulators.control import SimulatorControl
from integrations.simulators.process import running_simulators, upstream_variables
from integrations.simulators.seed import DEMO_CITIZEN

NAME = "integrations_home"
SECONDS = int(os.environ.get("HOME_BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("HOME_BENCH_CONNECTIONS", "32"))
COLD_REQUESTS = int(os.environ.get("HOME_BENCH_COLD_REQUESTS", "200"))
LIGHT = 2  # connections for the budget check below saturation (no queueing in the worker)
TILE_BUDGET = 0.25
UPSTREAMS = ("social_security", "medical_insurance", "health", "bus", "gov_services", "utilities")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk_with_token(url: str, token: str, connections: int = CONNECTIONS) -> dict[str, float]:
    """``bench._harness.wrk`` with the bearer token (wrk's ``-H``)."""
    output = subprocess.run(
        [
            ensure_wrk(),
            "-t1",
            f"-c{connections}",
            f"-d{SECONDS}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["rps"] = float(rate.group(1)) if rate else 0.0
    for percentile in ("50", "90", "99"):
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match:
            result[f"p{percentile}_ms"] = float(match.group(1)) * _UNITS[match.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


async def demo_citizen(base: str) -> str:
    """An L2 session for the demo citizen, with a card: the app's own sign-up path."""
    api = f"{base}/api/v1/identity"
    async with httpx.AsyncClient(timeout=30) as http:
        mobile = DEMO_CITIZEN.mobile
        (await http.post(f"{api}/codes", json={"mobile": mobile, "purpose": "register"})).raise_for_status()
        sms = (await http.get(f"{api}/dev/sms", params={"mobile": mobile, "limit": 1})).json()
        code = re.search(r"(\d{6})", sms[0]["text"])
        assert code is not None
        session = await http.post(f"{api}/registrations", json={"mobile": mobile, "code": code.group(1)})
        session.raise_for_status()
        token = session.json()["token"]
        verified = await http.post(
            f"{api}/me/verification",
            json={"name": DEMO_CITIZEN.name, "id_number": DEMO_CITIZEN.id_number},
            headers={"Authorization": f"Bearer {token}"},
        )
        verified.raise_for_status()
        token = verified.json()["token"]
        card = await http.post(f"{base}/api/v1/cards", headers={"Authorization": f"Bearer {token}"})
        card.raise_for_status()
        return str(token)


async def flush_cache(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter("citizen:cache:*")]
        keys += [k async for k in client.scan_iter("citizen:breaker:*")]
        keys += [k async for k in client.scan_iter("citizen:home:*")]  # the card summary and unread count
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def cold(base: str, token: str, redis_url: str, count: int = COLD_REQUESTS) -> dict[str, float]:
    """Each request after the connector caches were emptied: every tile goes upstream."""
    latencies = []
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(count):
            await flush_cache(redis_url)
            started = time.perf_counter()
            response = await http.get(f"{base}/api/v1/home")
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
            assert {t["status"] for t in response.json()["tiles"]} == {"ok"}, response.text
    latencies.sort()
    return {
        "rps": 1000 / statistics.fmean(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


async def statuses(base: str, token: str) -> dict[str, str]:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        page = (await http.get(f"{base}/api/v1/home")).json()
    return {t["id"]: t["status"] for t in page["tiles"]}


async def upstream_calls(urls: dict[str, str]) -> int:
    async with SimulatorControl(urls) as control:
        return sum([await control.data_requests(name) for name in UPSTREAMS])


def main() -> None:
    with services() as resolved:
        asyncio.run(migrate_database(resolved.settings))
        base_env = service_env(resolved, CITIZEN_LOG_LEVEL="WARNING")
        with running_simulators({**base_env, "CITIZEN_LOG_LEVEL": "ERROR"}) as simulators:
            env = {
                **base_env,
                **upstream_variables(simulators.urls),
                "CITIZEN_ENTRANCE_TILE_BUDGET": str(TILE_BUDGET),
                "CITIZEN_ENTRANCE_PAGE_BUDGET": "0.5",
            }
            redis_url = env["CITIZEN_REDIS_URL"]
            urls = simulators.urls
            with uvicorn_server("backend.asgi:create_app_from_env", env, factory=True) as (base, _):
                token = asyncio.run(demo_citizen(base))
                baseline = wrk(base + "/api/v1/platform/status", connections=CONNECTIONS, seconds=SECONDS)
                # The least a signed-in page costs here: the token check and one PostgreSQL query.
                signed_in = wrk_with_token(base + "/api/v1/messages/unread-count", token)
                cold_run = asyncio.run(cold(base, token, redis_url))
                # Warm: primed once, then no upstream call while the cache entries are fresh.
                asyncio.run(flush_cache(redis_url))
                primed = asyncio.run(statuses(base, token))
                before = asyncio.run(upstream_calls(urls))
                warm = wrk_with_token(base + "/api/v1/home", token)
                calls_during_warm = asyncio.run(upstream_calls(urls)) - before
                # One dead, one slow; their cache entries gone, the others warm.
                asyncio.run(flush_cache(redis_url))
                asyncio.run(statuses(base, token))
                asyncio.run(_faults(urls, dead="social_security", slow="bus"))
                asyncio.run(flush_cache(redis_url))
                degraded_tiles = asyncio.run(statuses(base, token))
                faulty = wrk_with_token(base + "/api/v1/home", token)
                light = wrk_with_token(base + "/api/v1/home", token, connections=LIGHT)
                asyncio.run(_faults(urls))
    common: dict[str, Any] = {"workers": 1, "connections": CONNECTIONS, "seconds": SECONDS}
    emit(
        NAME,
        "home_warm_rps",
        warm["rps"],
        "req/s",
        baseline="GET /api/v1/platform/status (one PostgreSQL round trip), same server",
        baseline_value=baseline["rps"],
        target=">= 3000 req/s on one worker",
        p50_ms=warm.get("p50_ms"),
        p99_ms=warm.get("p99_ms"),
        non_2xx=warm["non_2xx"],
        signed_in_one_query_rps=signed_in["rps"],
        signed_in_note="GET /api/v1/messages/unread-count: token check + one PostgreSQL query, same server",
        tiles=primed,
        **common,
    )
    emit(
        NAME,
        "home_warm_upstream_calls",
        calls_during_warm,
        "calls",
        target="0 (every tile fresh in the cache)",
        **common,
    )
    emit(
        NAME,
        "home_cold_p99",
        cold_run["p99_ms"],
        "ms",
        baseline="tile budget (ms)",
        baseline_value=TILE_BUDGET * 1000,
        p50_ms=cold_run["p50_ms"],
        rps_sequential=cold_run["rps"],
        note="one request at a time, every connector cache emptied before each",
        requests=COLD_REQUESTS,
    )
    emit(
        NAME,
        "home_dead_and_slow_p99",
        faulty.get("p99_ms", 0.0),
        "ms",
        baseline="the slowest tile budget (ms)",
        baseline_value=TILE_BUDGET * 1000,
        target=f"<= {TILE_BUDGET * 1000 + 10:g} ms",
        rps=faulty["rps"],
        p50_ms=faulty.get("p50_ms"),
        non_2xx=faulty["non_2xx"],
        tiles=degraded_tiles,
        note="saturated: the p99 includes queueing for the one worker",
        **common,
    )
    emit(
        NAME,
        "home_dead_and_slow_p99_light",
        light.get("p99_ms", 0.0),
        "ms",
        baseline="the slowest tile budget (ms)",
        baseline_value=TILE_BUDGET * 1000,
        target=f"<= {TILE_BUDGET * 1000 + 10:g} ms",
        rps=light["rps"],
        p50_ms=light.get("p50_ms"),
        non_2xx=light["non_2xx"],
        workers=1,
        connections=LIGHT,
        seconds=SECONDS,
    )


async def _faults(urls: dict[str, str], *, dead: str | None = None, slow: str | None = None) -> None:
    """With neither: every upstream reset (healthy, counters at zero)."""
    async with SimulatorControl(urls) as control:
        if dead is None and slow is None:
            await control.reset()
        if dead is not None:
            await control.set(dead, outage=True)
        if slow is not None:
            await control.set(slow, latency_ms=5_000)


if __name__ == "__main__":
    main()
