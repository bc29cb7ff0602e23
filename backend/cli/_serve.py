"""``citizen serve`` and the commands around it: migrate, demo, services, settings, the simulators
and the terminal gateway alone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from backend.cli._common import Commands, announce_upstreams, no_args, settings_from
from backend.keyring import KEY_NAMES, Keyring, key_variable
from backend.runtime import migrate_database, resolved_services
from backend.settings import Settings, documented_variables

if TYPE_CHECKING:
    from integrations.simulators.process import SimulatorsProcess

COMMANDS: Commands = {}


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_from(args, adopt_upstreams=False)  # serve starts its own simulators
    Keyring.load(settings)  # dev keys are made here, once, before any worker starts
    with resolved_services(settings) as services:
        resolved = services.settings
        applied = asyncio.run(migrate_database(resolved))
        if applied:
            print(f"applied {len(applied)} migration(s)")
        assert resolved.database.url is not None and resolved.redis.url is not None
        # Workers are separate processes: they get the servers exactly as external URLs.
        os.environ["CITIZEN_DATABASE_URL"] = resolved.database.url.reveal()
        os.environ["CITIZEN_REDIS_URL"] = resolved.redis.url.reveal()
        # --host/--port/--workers reach the workers too (the issuer and redirect URIs use them).
        os.environ["CITIZEN_HTTP_HOST"] = resolved.http.host
        os.environ["CITIZEN_HTTP_PORT"] = str(resolved.http.port)
        os.environ["CITIZEN_WORKERS"] = str(resolved.http.workers)
        if resolved.http.workers > 1:
            metrics_dir = Path(resolved.data_dir) / "run" / "metrics"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        simulators = _start_simulators(resolved)
        if args.demo:
            # After the simulators: the demo citizen's day tops up through the payment channel
            # simulators, over HTTP at the URLs they were given when they started.
            for line in _demo_with_upstreams(resolved, simulators):
                print(f"demo  {line}")
        from backend.workers import ProcessSupervisor
        from card.terminal.gateway.process import GATEWAY_COMMAND, default_processes

        # The terminal gateway (TCP) beside the API workers: N processes on one port, each
        # restarted if it dies (terminals reconnect and re-send what was not acknowledged).
        gateway = ProcessSupervisor(
            GATEWAY_COMMAND, count=default_processes(resolved.terminal.processes),
            name="terminal gateway", grace=10.0,
            announce=lambda line: print(f"  {line}", flush=True),
            logger=logging.getLogger("citizen.terminal.gateway"),
        )  # fmt: skip
        base = f"http://{resolved.http.host}:{resolved.http.port}"
        print(f"\n  API            {base}/api/v1/platform/status")
        print(f"  API reference  {base}/schema")
        print(f"  citizen page   {base}/web/")
        print(f"  console        {base}/console/")
        print(f"  health         {base}/readyz    metrics {base}/metrics")
        if services.postgres is not None:
            print(f"  PostgreSQL     embedded, data in {services.postgres.directory}")
        if services.redis is not None:
            print(f"  Redis          embedded, data in {services.redis.directory}")
        if simulators is not None:
            print(f"  upstreams      simulated (pid {simulators.pid}), e.g. {simulators.urls['population']}")
        terminal = resolved.terminal
        pids = ", ".join(str(pid) for pid in gateway.pids)
        print(f"  terminals      tcp://{terminal.host}:{terminal.port} (gateway pids {pids}, supervised)")
        print("\n  Ctrl-C stops everything.\n", flush=True)
        # uvicorn drains in-flight requests on SIGINT/SIGTERM, then re-raises the signal; these
        # handlers turn that into a normal return, so the embedded servers below are stopped.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _stop_serving)
        with contextlib.suppress(_StopServing), _stopped_at_exit(simulators):
            try:
                _run_uvicorn(uvicorn, resolved)
            finally:
                gateway.stop()
    return 0


def _run_uvicorn(uvicorn: Any, resolved: Settings) -> None:
    http = resolved.http
    if http.workers > 1:
        # A listening socket per worker (backend.workers), not uvicorn's one shared socket.
        from backend.workers import api_workers

        workers = api_workers(
            "backend.asgi:create_app_from_env", factory=True, host=http.host, port=http.port,
            count=http.workers, grace=http.shutdown_grace,
            announce=lambda line: print(f"  {line}", flush=True),
        )  # fmt: skip
        try:
            workers.wait()  # until SIGINT/SIGTERM (_stop_serving raises)
        finally:
            workers.stop()
        if workers.failed.is_set():
            raise SystemExit("citizen serve: the API workers could not start (see above)")
        return
    uvicorn.run(
        "backend.asgi:create_app_from_env",
        factory=True,
        host=resolved.http.host,
        port=resolved.http.port,
        workers=resolved.http.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(resolved.http.shutdown_grace),
        lifespan="on",
    )


def _start_simulators(settings: Settings) -> SimulatorsProcess | None:
    """In development, with no upstream URL set: the simulators, their URLs in the workers' env."""
    from backend.settings import Environment
    from integrations.simulators.process import start_simulators, upstream_variables

    upstreams = settings.integrations.upstreams
    if settings.environment is not Environment.DEVELOPMENT or any(u.url for u in upstreams.values()):
        return None
    env = dict(os.environ, CITIZEN_DATA_DIR=str(settings.data_dir), CITIZEN_ENV=settings.environment.value)
    simulators = start_simulators(env)
    variables = upstream_variables(simulators.urls)
    os.environ.update(variables)
    announce_upstreams(settings, simulators.pid, variables)
    return simulators


def _demo_with_upstreams(resolved: Settings, simulators: SimulatorsProcess | None) -> list[str]:
    """Load the demo with the settings read again from the environment, which now holds the
    simulators' upstream URLs (the servers and the HTTP address stay the resolved ones)."""
    try:
        if simulators is not None:
            env = Settings.from_env()
            resolved = env.replace(database=resolved.database, redis=resolved.redis, http=resolved.http)
        return asyncio.run(_load_demo(resolved))
    except BaseException:
        if simulators is not None:
            simulators.stop()  # a failed demo load leaves no simulator process behind
        raise


@contextlib.contextmanager
def _stopped_at_exit(simulators: SimulatorsProcess | None) -> Iterator[None]:
    try:
        yield
    finally:
        if simulators is not None:
            simulators.stop()


class _StopServing(Exception):
    pass


def _stop_serving(_number: int, _frame: object) -> None:
    raise _StopServing


async def _load_demo(settings: Settings) -> list[str]:
    import redis.asyncio as aioredis

    from backend.db import create_pool
    from backend.demo import load_demo

    assert settings.database.url is not None and settings.redis.url is not None
    pool = await create_pool(settings.database, settings.database.url.reveal())
    client = aioredis.from_url(settings.redis.url.reveal())
    try:
        return await load_demo(pool, client, settings, Keyring.load(settings))
    finally:
        await client.aclose()
        await pool.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with resolved_services(settings) as services:
        applied = asyncio.run(migrate_database(services.settings))
    print("\n".join(f"applied {label}" for label in applied) or "the database is up to date")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with resolved_services(settings) as services:
        asyncio.run(migrate_database(services.settings))
        lines = asyncio.run(_load_demo(services.settings))
    print("\n".join(lines) or "no demo data is defined")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    with resolved_services(settings) as services:
        s = services.settings
        assert s.database.url is not None and s.redis.url is not None
        # In full only the URLs of the servers started here (for another terminal to use); a URL
        # that was given may be a production server's, and its password has no place in a log.
        print(f"CITIZEN_DATABASE_URL={shown_url(s.database.url.reveal(), services.postgres is not None)}")
        print(f"CITIZEN_REDIS_URL={shown_url(s.redis.url.reveal(), services.redis is not None)}", flush=True)
        if services.postgres is None and services.redis is None:
            print("both URLs are set: nothing to start")
            return 0
        print("serving until Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
        _wait_for_signal()
    return 0


def shown_url(url: str, started_here: bool) -> str:
    """``url`` as ``citizen services`` prints it: with its password masked unless ``started_here``."""
    if started_here:
        return url
    parts = urlsplit(url)
    # By hand, not .hostname/.port: a PostgreSQL URL may name several hosts ("h1:5432,h2:5432").
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not at or not colon:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _wait_for_signal() -> None:
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: received.append(number))
    while not received:
        signal.pause()


def cmd_settings(args: argparse.Namespace) -> int:
    settings_from(args)  # validates the environment
    for name, path in documented_variables():
        state = "set" if os.environ.get(name) else "default"
        print(f"{name:38} {path:28} {state}")
    # The keys (backend.keyring: required in production, generated under the data directory
    # otherwise), never printed; and what citizen-terminals reads to sign in as an operator.
    for purpose in KEY_NAMES:
        name = key_variable(purpose)
        state = "set" if os.environ.get(name) else "generated (not production)"
        print(f"{name:38} {'key: ' + purpose:28} {state}")
    for name in ("CITIZEN_TERMINALS_OPERATOR", "CITIZEN_TERMINALS_PASSWORD", "CITIZEN_TERMINALS_TOKEN"):
        print(f"{name:38} {'citizen-terminals':28} {'set' if os.environ.get(name) else 'default'}")
    return 0


def cmd_simulators(args: argparse.Namespace) -> int:
    """``citizen simulators``: the simulated upstreams in the foreground; their URLs as JSON on stdout."""
    from integrations.simulators.__main__ import run

    return run(args)


def _simulators_args(parser: argparse.ArgumentParser) -> None:
    from integrations.simulators.__main__ import add_arguments

    add_arguments(parser)


def cmd_gateway(args: argparse.Namespace) -> int:
    """``citizen gateway``: the terminal gateway alone (embedded PostgreSQL/Redis if no URLs)."""
    from card.terminal.gateway import run_gateway

    settings = settings_from(args)
    port = getattr(args, "terminal_port", None)
    if port is not None:
        import msgspec

        settings = settings.replace(terminal=msgspec.structs.replace(settings.terminal, port=port))
    keyring = Keyring.load(settings)
    with resolved_services(settings) as services:
        asyncio.run(migrate_database(services.settings))
        return run_gateway(services.settings, keyring, lambda line: print(line, flush=True))


def _gateway_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--port", dest="terminal_port", type=int, help="TCP port (CITIZEN_TERMINAL_PORT, default 9100)"
    )


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (CITIZEN_HTTP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CITIZEN_HTTP_PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (CITIZEN_WORKERS, default 1)")
    parser.add_argument("--demo", action="store_true", help="load the demo data before serving")


COMMANDS.update(
    {
        "serve": (
            "serve the API (starting embedded PostgreSQL/Redis if no URLs are set)",
            cmd_serve,
            _serve_args,
        ),
        "migrate": ("apply pending database migrations", cmd_migrate, no_args),
        "demo": ("load the demo data (idempotent)", cmd_demo, no_args),
        "services": (
            "start only the embedded PostgreSQL and Redis and print their URLs",
            cmd_services,
            no_args,
        ),
        "settings": ("list the CITIZEN_* variables and whether each is set", cmd_settings, no_args),
    }
)

COMMANDS["simulators"] = (
    "serve the simulated upstream services (development) and print their URLs",
    cmd_simulators,
    _simulators_args,
)
COMMANDS["gateway"] = ("serve the terminal gateway (binary TCP protocol) alone", cmd_gateway, _gateway_args)
