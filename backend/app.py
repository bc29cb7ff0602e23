"""The application factory: ``create_app(settings)`` wires the shell and the domain packages."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
import redis.asyncio as aioredis
from litestar import Litestar, MediaType, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from backend import migrations
from backend.db import Pool, create_pool, is_database_unavailable
from backend.errors import exception_handlers, problem_response
from backend.keyring import Keyring
from backend.observability import Metrics, ObservabilityMiddleware
from backend.redis_reads import attach
from backend.settings import Settings
from backend.wiring import domain_parts

__all__ = ["Resources", "create_app"]

log = logging.getLogger("citizen.app")


class Resources:
    """What one process holds for the app: made in the lifespan, closed on shutdown."""

    def __init__(self, settings: Settings, keyring: Keyring) -> None:
        self.settings = settings
        self.keyring = keyring
        self._pool: Pool | None = None
        self._redis: aioredis.Redis | None = None
        self.expected_migrations = migrations.discover()

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open (outside the app's lifespan)")
        return self._pool

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("redis is not open (outside the app's lifespan)")
        return self._redis

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        db, rd = self.settings.database, self.settings.redis
        if db.url is None or rd.url is None:
            raise RuntimeError("database and redis URLs must be resolved before the app starts")
        self._redis = aioredis.from_url(
            rd.url.reveal(),
            socket_timeout=rd.socket_timeout,
            socket_connect_timeout=rd.socket_timeout,
            health_check_interval=30,
        )
        # The hot reads (token check, the home's MGET) on a lean connection of their own.
        reads = attach(self._redis)
        try:
            self._pool = await create_pool(db, db.url.reveal())
            # Objects made at start-up live as long as the process: keep them out of every
            # future collection, which otherwise shows up as latency spikes under load.
            gc.freeze()
            try:
                yield
            finally:
                # close() waits for every borrowed connection to come back; one that never does
                # (a task cancelled mid-query elsewhere) must not hang the shutdown.
                try:
                    await asyncio.wait_for(self._pool.close(), _SHUTDOWN_BUDGET)
                except TimeoutError:
                    log.exception("database pool did not close within %s s; terminated", _SHUTDOWN_BUDGET)
                    self._pool.terminate()
        finally:
            if reads is not None:
                await reads.aclose()
            await self._redis.aclose()


class PlatformStatus(msgspec.Struct, frozen=True):
    environment: str
    database_time: dt.datetime
    migrations_applied: int


@get("/api/v1/platform/status", operation_id="GetPlatformStatus", tags=["platform"])
async def platform_status(
    db_pool: NamedDependency[Pool], settings: NamedDependency[Settings]
) -> PlatformStatus:
    """The platform's state as PostgreSQL sees it (one round trip)."""
    row = await db_pool.fetchrow(
        "SELECT now() AS now, (SELECT count(*) FROM backend.schema_migrations) AS applied"
    )
    assert row is not None
    return PlatformStatus(settings.environment.value, row["now"], row["applied"])


@get("/healthz", operation_id="Liveness", tags=["operations"], include_in_schema=True)
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. It checks nothing else, so it never causes a restart storm."""
    return {"status": "ok"}


@get("/readyz", operation_id="Readiness", tags=["operations"])
async def readyz(resources: NamedDependency[Resources]) -> Response[Any]:
    """Readiness: PostgreSQL and Redis answer within a second, and every migration is applied."""
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(1.0):
            async with resources.pool.acquire() as connection:
                waiting = await migrations.pending(connection, resources.expected_migrations)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if not waiting else f"pending: {', '.join(waiting)}"
    except migrations.MigrationError as exc:
        checks["database"] = "ok"
        checks["migrations"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with its reason
        checks["database"] = _reason(exc)
        checks["migrations"] = "unknown"
    try:
        async with asyncio.timeout(1.0):
            await resources.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["redis"] = _reason(exc)
    if all(value == "ok" for value in checks.values()):
        return Response({"status": "ready", "checks": checks})
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem_response(
        503, "not-ready", f"Not ready: {failing}", title="Not ready", extra={"checks": checks}
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "unavailable: no answer within 1 s"
    if is_database_unavailable(exc):
        return f"unavailable: {exc.__class__.__name__}"
    return f"error: {exc.__class__.__name__}"


# How long one domain's lifespan may take to stop before it is abandoned (with an error logged):
# a stuck shutdown must never keep `make run`'s Ctrl-C, a SIGTERM'd worker or a test from ending.
_SHUTDOWN_BUDGET = 10.0


def _bounded_shutdown(lifespan: Callable[[Any], AbstractAsyncContextManager[None]]) -> Any:
    name = getattr(lifespan, "__qualname__", repr(lifespan))

    @contextlib.asynccontextmanager
    async def bounded(app: Litestar) -> AsyncIterator[None]:
        manager = lifespan(app)
        await manager.__aenter__()
        try:
            yield
        finally:
            try:
                async with asyncio.timeout(_SHUTDOWN_BUDGET):
                    await manager.__aexit__(None, None, None)
            except TimeoutError:
                log.exception("lifespan %s did not stop within %s s; abandoned", name, _SHUTDOWN_BUDGET)

    return bounded


def create_app(settings: Settings, keyring: Keyring | None = None) -> Litestar:
    """Build the ASGI app. ``settings`` must carry resolved database and Redis URLs."""
    keyring = keyring or Keyring.load(settings)
    resources = Resources(settings, keyring)
    parts = domain_parts(resources)
    metrics = Metrics(parts.metric_registries)

    @get("/metrics", operation_id="Metrics", tags=["operations"], media_type=MediaType.TEXT)
    async def metrics_endpoint() -> Response[bytes]:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    def _wrap(app: Any) -> Any:
        return ObservabilityMiddleware(app, metrics)

    def _dependencies() -> dict[str, Provide]:
        return {
            "resources": Provide(lambda: resources, use_cache=True, sync_to_thread=False),
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "keyring": Provide(lambda: keyring, use_cache=True, sync_to_thread=False),
            "db_pool": Provide(lambda: resources.pool, sync_to_thread=False),
            "redis": Provide(lambda: resources.redis, sync_to_thread=False),
        }

    route_handlers: list[Any] = [healthz, readyz, metrics_endpoint, platform_status, *parts.route_handlers]
    app = Litestar(
        route_handlers=route_handlers,
        dependencies={**_dependencies(), **parts.dependencies},
        lifespan=[resources.lifespan, *(_bounded_shutdown(p) for p in parts.lifespans)],
        exception_handlers=exception_handlers,
        openapi_config=OpenAPIConfig(
            title="Citizen super-app API",
            version="1",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        debug=False,
        logging_config=None,  # backend.observability configures logging once per process
    )
    app.asgi_handler = _wrap(app.asgi_handler)
    return app
