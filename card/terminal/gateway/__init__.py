"""The terminal gateway process: ``citizen gateway`` (alone) or started by ``citizen serve``."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

import redis.asyncio as aioredis

from backend.db import create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.keys import SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.gateway.server import Gateway
from card.terminal.host.service import TerminalHost

__all__ = ["Gateway", "run_gateway", "running_gateway"]


@contextlib.asynccontextmanager
async def running_gateway(
    settings: Settings, keyring: Keyring, *, port: int | None = None, pool_max: int | None = None
) -> AsyncIterator[tuple[Gateway, tuple[str, int]]]:
    """A started gateway with its own pool and Redis client; closed on exit."""
    assert settings.database.url is not None and settings.redis.url is not None
    database = settings.database
    if pool_max is not None:
        import msgspec

        database = msgspec.structs.replace(
            database, pool_max=pool_max, pool_min=min(database.pool_min, pool_max)
        )
    pool = await create_pool(database, database.url.reveal() if database.url else "")
    # A blocking pool: under a burst (hundreds of kiosks at once) a request waits for a connection
    # instead of failing with MaxConnectionsError (redis-py's default pool refuses past 100).
    redis = aioredis.Redis.from_pool(
        aioredis.BlockingConnectionPool.from_url(
            settings.redis.url.reveal(),
            max_connections=64,
            timeout=settings.redis.socket_timeout or 5,
            socket_timeout=settings.redis.socket_timeout,
        )
    )
    try:
        kek = keyring.get("card-kek")
        keys = SoftwareKeyStore(pool, kek)
        await keys.ensure_initialised()
        card_settings = getattr(settings, "card", None) or CardSettings()
        host = TerminalHost(
            pool=pool,
            redis=redis,
            kek=kek,
            keys=keys,
            settings=settings.terminal,
            card_settings=card_settings,
        )
        gateway = Gateway(host, settings.terminal)
        address = await gateway.start(port=port)
        try:
            yield gateway, address
        finally:
            await gateway.close()
    finally:
        await redis.aclose()
        await pool.close()


def run_gateway(settings: Settings, keyring: Keyring, announce: Callable[[str], None] = print) -> int:
    """Serve until SIGINT/SIGTERM (``citizen gateway``)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running_gateway(settings, keyring) as (_, (host, port)):
            announce(f"terminal gateway listening on {host}:{port}")
            await stop.wait()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop

            uvloop.run(main())
        except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
            asyncio.run(main())
    return 0
