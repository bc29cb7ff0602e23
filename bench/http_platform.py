"""A read endpoint with one PostgreSQL round trip, beside a bare Litestar endpoint (issue 2).

Targets: the database endpoint at >= 0.4 x the bare endpoint's rate on one worker, p99 <= 10 ms
at 32 connections, worker RSS <= 150 MB under that load.
"""

from __future__ import annotations

import asyncio

from backend.runtime import migrate_database
from bench._harness import emit, rss_mb, service_env, services, uvicorn_server, wrk

NAME = "http_platform"
SECONDS = 10
CONNECTIONS = 32


def main() -> None:
    with services() as resolved:
        asyncio.run(migrate_database(resolved.settings))
        env = service_env(resolved, CITIZEN_LOG_LEVEL="WARNING")
        with uvicorn_server("bench.apps:bare_app", env) as (base, _):
            wrk(base + "/bare", seconds=2)  # warm-up
            bare = wrk(base + "/bare", connections=CONNECTIONS, seconds=SECONDS)
        with uvicorn_server("backend.asgi:create_app_from_env", env, factory=True) as (base, process):
            wrk(base + "/api/v1/platform/status", seconds=2)
            db = wrk(base + "/api/v1/platform/status", connections=CONNECTIONS, seconds=SECONDS)
            memory = rss_mb(process.pid)
    common = {"workers": 1, "connections": CONNECTIONS, "seconds": SECONDS}
    emit(
        NAME, "bare_rps", bare["rps"], "req/s", p50_ms=bare.get("p50_ms"), p99_ms=bare.get("p99_ms"), **common
    )
    emit(
        NAME,
        "db_read_rps",
        db["rps"],
        "req/s",
        baseline="bare Litestar endpoint, same server settings",
        baseline_value=bare["rps"],
        target=">= 0.4 x baseline",
        p50_ms=db.get("p50_ms"),
        p99_ms=db.get("p99_ms"),
        non_2xx=db["non_2xx"],
        **common,
    )
    emit(NAME, "db_read_p99", db.get("p99_ms", 0.0), "ms", target="<= 10 ms", **common)
    emit(NAME, "worker_rss", memory, "MB", target="<= 150 MB", **common)


if __name__ == "__main__":
    main()
