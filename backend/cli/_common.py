"""What every ``citizen`` subcommand shares: its settings (environment, then flags) and the one
runner that gives a maintenance subcommand migrated servers, a pool and a Redis client."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from backend.observability import configure_logging
from backend.runtime import migrate_database, resolved_services
from backend.settings import Settings

Handler = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], None]
# name -> (one-line summary, handler, argument builder); each module of this package has one.
Commands = dict[str, tuple[str, Handler, AddArguments]]


# Where `citizen serve` (development) tells other commands the URLs of the simulators it started,
# so that `citizen reconcile` or `citizen payments sweep` in another terminal reach the same ones.
_UPSTREAMS_FILE = Path("run") / "upstreams.json"


def announce_upstreams(settings: Settings, pid: int, variables: Mapping[str, str]) -> Path:
    path = Path(settings.data_dir) / _UPSTREAMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "variables": dict(variables)}))
    return path


def _adopt_running_upstreams(settings: Settings) -> Settings:
    """In development with no upstream URL set: those of the simulators a running `citizen serve`
    started (its announcement, if that process is still alive); otherwise ``settings`` unchanged."""
    if not settings.is_development or any(u.url for u in settings.integrations.upstreams.values()):
        return settings
    try:
        record = json.loads((Path(settings.data_dir) / _UPSTREAMS_FILE).read_text())
        os.kill(int(record["pid"]), 0)
        variables = {str(k): str(v) for k, v in record["variables"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return settings
    for name, value in variables.items():
        os.environ.setdefault(name, value)
    return Settings.from_env()


def settings_from(args: argparse.Namespace, *, adopt_upstreams: bool = True) -> Settings:
    """The settings of a subcommand: the environment, the --host/--port/--workers flags, and (unless
    told not to) the upstream URLs of simulators that a running `citizen serve` announced."""
    settings = Settings.from_env()
    if adopt_upstreams:
        settings = _adopt_running_upstreams(settings)
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
