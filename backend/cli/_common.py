"""What every ``citizen`` subcommand shares: its settings (environment, then flags) and the one
runner that gives a maintenance subcommand migrated servers, a pool and a Redis client."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from backend.observability import configure_logging
from backend.runtime import migrate_database, resolved_services
from backend.settings import Settings

Handler = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]
# name -> (one-line summary, handler, argument builder); each module of this package has one.
Commands = dict[str, tuple[str, Handler, AddArguments]]


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    http = settings.http
    changes: dict[str, Any] = {}
    for name in ("host", "port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if changes:
        import msgspec

        settings = settings.replace(http=msgspec.structs.replace(http, **changes))
    configure_logging(settings.log_level, json_lines=settings.log_json and not sys.stderr.isatty())
    return settings


def no_args(_: argparse.ArgumentParser) -> None:
    return None


def date_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", required=True, help="the business date, YYYY-MM-DD (service day, China time)"
    )


def run_on_servers(args: argparse.Namespace, work: Callable[[Any, Any, Settings], Any]) -> int:
    """Run ``work(pool, redis, settings)`` on the resolved, migrated servers; print its lines, exit its code.

    The one runner behind the domains' maintenance subcommands."""
    import redis.asyncio as aioredis

    from backend.db import create_pool

    settings = settings_from(args)
    with resolved_services(settings) as services:
        resolved = services.settings
        asyncio.run(migrate_database(resolved))

        async def run() -> int:
            assert resolved.database.url is not None and resolved.redis.url is not None
            pool = await create_pool(resolved.database, resolved.database.url.reveal())
            client = aioredis.from_url(resolved.redis.url.reveal())
            try:
                code, lines = await work(pool, client, resolved)
            finally:
                await client.aclose()
                await pool.close()
            print("\n".join(lines))
            return int(code)

        return asyncio.run(run())
