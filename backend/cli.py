"""The ``citizen`` command. Every subcommand has ``--help``; domains add theirs in ``_COMMANDS``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.keyring import Keyring
from backend.observability import configure_logging
from backend.runtime import migrate_database, resolved_services
from backend.settings import Settings, SettingsError, documented_variables

if TYPE_CHECKING:
    from integrations.simulators.process import SimulatorsProcess

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
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
        from card.terminal.gateway.process import GatewaySupervisor, default_processes

        # The terminal gateway (TCP) beside the API workers: N processes on one port, each
        # restarted if it dies (terminals reconnect and re-send what was not acknowledged).
        processes = default_processes(resolved.terminal.processes)
        gateway = GatewaySupervisor(processes, announce=lambda line: print(f"  {line}", flush=True))
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
    os.environ.update(upstream_variables(simulators.urls))
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
    settings = _settings(args)
    with resolved_services(settings) as services:
        applied = asyncio.run(migrate_database(services.settings))
    print("\n".join(f"applied {label}" for label in applied) or "the database is up to date")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with resolved_services(settings) as services:
        asyncio.run(migrate_database(services.settings))
        lines = asyncio.run(_load_demo(services.settings))
    print("\n".join(lines) or "no demo data is defined")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with resolved_services(settings) as services:
        s = services.settings
        assert s.database.url is not None and s.redis.url is not None
        print(f"CITIZEN_DATABASE_URL={s.database.url.reveal()}")
        print(f"CITIZEN_REDIS_URL={s.redis.url.reveal()}", flush=True)
        if services.postgres is None and services.redis is None:
            print("both URLs are set: nothing to start")
            return 0
        print("serving until Ctrl-C or SIGTERM", file=sys.stderr, flush=True)
        _wait_for_signal()
    return 0


def _wait_for_signal() -> None:
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda number, _frame: received.append(number))
    while not received:
        signal.pause()


def cmd_settings(args: argparse.Namespace) -> int:
    _settings(args)  # validates the environment
    for name, path in documented_variables():
        state = "set" if os.environ.get(name) else "default"
        print(f"{name:38} {path:28} {state}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``bench/<name>.py`` from the checkout (benchmarks are not installed with the package)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    folder = root / "bench"
    if not folder.is_dir():
        print("citizen bench: run from a checkout (bench/ is not installed)", file=sys.stderr)
        return 2
    available = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_") and p.stem != "apps")
    names = available if args.name == "all" else [args.name]
    unknown = [n for n in names if n not in available]
    if unknown:
        print(
            f"citizen bench: unknown benchmark {unknown[0]!r}; one of: all, {', '.join(available)}",
            file=sys.stderr,
        )
        return 2
    failed = 0
    for name in names:
        failed |= subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=root, check=False).returncode  # noqa: S603
    return 1 if failed else 0


def _bench_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a file of bench/ without .py, or 'all'")


_COMMANDS: dict[
    str, tuple[str, Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None]]
] = {}


def _no_args(_: argparse.ArgumentParser) -> None:
    return None


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (CITIZEN_HTTP_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CITIZEN_HTTP_PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (CITIZEN_WORKERS, default 1)")
    parser.add_argument("--demo", action="store_true", help="load the demo data before serving")


_COMMANDS.update(
    {
        "serve": (
            "serve the API (starting embedded PostgreSQL/Redis if no URLs are set)",
            cmd_serve,
            _serve_args,
        ),
        "migrate": ("apply pending database migrations", cmd_migrate, _no_args),
        "bench": ("run a benchmark from bench/ (JSON lines on stdout)", cmd_bench, _bench_args),
        "demo": ("load the demo data (idempotent)", cmd_demo, _no_args),
        "services": (
            "start only the embedded PostgreSQL and Redis and print their URLs",
            cmd_services,
            _no_args,
        ),
        "settings": ("list the CITIZEN_* variables and whether each is set", cmd_settings, _no_args),
    }
)


def cmd_ledger(args: argparse.Namespace) -> int:
    """``citizen ledger check``: every invariant of the payments ledger (payments/ledger/check.py)."""
    from backend.db import create_pool
    from payments.cli import ledger_check

    settings = _settings(args)
    with resolved_services(settings) as services:
        resolved = services.settings
        assert resolved.database.url is not None
        asyncio.run(migrate_database(resolved))

        async def run() -> int:
            assert resolved.database.url is not None
            pool = await create_pool(resolved.database, resolved.database.url.reveal())
            try:
                return await ledger_check(pool)
            finally:
                await pool.close()

        return asyncio.run(run())


def cmd_simulators(args: argparse.Namespace) -> int:
    """``citizen simulators``: the simulated upstreams in the foreground; their URLs as JSON on stdout."""
    from integrations.simulators.__main__ import run

    return run(args)


def _simulators_args(parser: argparse.ArgumentParser) -> None:
    from integrations.simulators.__main__ import add_arguments

    add_arguments(parser)


_COMMANDS["simulators"] = (
    "serve the simulated upstream services (development) and print their URLs",
    cmd_simulators,
    _simulators_args,
)


def _ledger_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: verify the ledger's invariants")


def cmd_gateway(args: argparse.Namespace) -> int:
    """``citizen gateway``: the terminal gateway alone (embedded PostgreSQL/Redis if no URLs)."""
    from card.terminal.gateway import run_gateway

    settings = _settings(args)
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


_COMMANDS["gateway"] = ("serve the terminal gateway (binary TCP protocol) alone", cmd_gateway, _gateway_args)
_COMMANDS["ledger"] = ("the payments ledger: 'check' verifies its invariants", cmd_ledger, _ledger_args)


def _run_on_servers(args: argparse.Namespace, work: Callable[[Any, Any, Settings], Any]) -> int:
    """Run ``work(pool, redis, settings)`` on the resolved, migrated servers; print its lines, exit its code.

    The one runner behind the domains' maintenance subcommands."""
    import redis.asyncio as aioredis

    from backend.db import create_pool

    settings = _settings(args)
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


def _payments_run(args: argparse.Namespace, work: Callable[[Any, Settings, Keyring], Any]) -> int:
    """Payments' subcommands take ``(pool, settings, keyring)``."""
    return _run_on_servers(args, lambda pool, _redis, settings: work(pool, settings, Keyring.load(settings)))


def cmd_settle(args: argparse.Namespace) -> int:
    """``citizen settle --date D``: clearing and settlement of business date D (safe to re-run)."""
    import datetime as dt

    from payments.cli import settle_day

    day = dt.date.fromisoformat(args.date)

    async def work(pool: Any, settings: Settings, keyring: Keyring) -> tuple[int, list[str]]:
        out = Path(args.out) if args.out else Path(settings.data_dir) / "settlement"
        return await settle_day(
            pool, day, key=keyring.get("settlement"), fee_bps=settings.payments.fee_bps, out_dir=out
        )

    return _payments_run(args, work)


def cmd_reconcile(args: argparse.Namespace) -> int:
    """``citizen reconcile --date D``: each channel's statement of D against the paid top-ups."""
    import datetime as dt

    from payments.cli import reconcile_day

    day = dt.date.fromisoformat(args.date)

    async def work(pool: Any, settings: Settings, keyring: Keyring) -> tuple[int, list[str]]:
        return await reconcile_day(pool, settings, keyring, day)

    return _payments_run(args, work)


def cmd_payments(args: argparse.Namespace) -> int:
    """``citizen payments sweep``: query un-notified top-up orders, close expired ones (once)."""
    from payments.cli import sweep_once

    async def work(pool: Any, settings: Settings, keyring: Keyring) -> tuple[int, list[str]]:
        return await sweep_once(pool, settings, keyring)

    return _payments_run(args, work)


def _date_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date", required=True, help="the business date, YYYY-MM-DD (service day, China time)"
    )


def _settle_args(parser: argparse.ArgumentParser) -> None:
    _date_args(parser)
    parser.add_argument("--out", help="folder for the operators' files (default: <data dir>/settlement)")


def _payments_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["sweep"], help="sweep: query and close stale top-up orders")


_COMMANDS["settle"] = (
    "clearing and settlement to operators for one day (re-runnable)",
    cmd_settle,
    _settle_args,
)
_COMMANDS["reconcile"] = (
    "reconcile top-ups against each channel's statement for one day",
    cmd_reconcile,
    _date_args,
)
_COMMANDS["payments"] = (
    "payments jobs: 'sweep' queries and closes stale top-ups",
    cmd_payments,
    _payments_args,
)


def _identity_run(args: argparse.Namespace, work: Callable[[Any, Any, Settings], Any]) -> int:
    return _run_on_servers(args, work)


def cmd_sms(args: argparse.Namespace) -> int:
    """``citizen sms tail``: what the development SMS gateway recorded (codes for the demo and tests)."""
    from identity.cli import sms_tail

    async def work(_pool: Any, client: Any, _settings: Settings) -> tuple[int, list[str]]:
        return 0, await sms_tail(client, args.n, args.mobile) or ["no messages recorded"]

    return _identity_run(args, work)


def _sms_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["tail"], help="tail: print the latest messages")
    parser.add_argument("-n", type=int, default=10, help="how many messages (default 10)")
    parser.add_argument("--mobile", help="only messages to this number")


def cmd_audit(args: argparse.Namespace) -> int:
    """``citizen audit verify``: recompute the identity audit chain; exit 1 at the first broken entry.
    ``citizen audit seal``: chain the recorded events not sealed yet."""
    from identity.cli import audit_seal, audit_verify

    async def work(pool: Any, _client: Any, _settings: Settings) -> tuple[int, list[str]]:
        return await (audit_seal(pool) if args.action == "seal" else audit_verify(pool))

    return _identity_run(args, work)


def _audit_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["verify", "seal"],
        help="verify: recompute the hash chain; seal: chain the events recorded but not sealed yet",
    )


def cmd_operators(args: argparse.Namespace) -> int:
    """``citizen operators create``: an operator account (the first one is made this way)."""
    from identity.cli import operators_create

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        return 0, await operators_create(
            pool,
            settings.identity,
            username=args.username,
            display_name=args.name or args.username,
            roles=args.role,
            password=password,
        )

    return _identity_run(args, work)


def _operators_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create"], help="create: a new operator")
    parser.add_argument("--username", required=True, help="3-64 of a-z 0-9 . _ -")
    parser.add_argument("--name", help="display name (default: the username)")
    parser.add_argument(
        "--role",
        action="append",
        required=True,
        choices=["support", "auditor", "security_admin"],
        help="a role (repeat for several)",
    )
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (default: generate one)"
    )


_COMMANDS["sms"] = ("development SMS gateway: 'tail' prints the latest messages", cmd_sms, _sms_args)
_COMMANDS["audit"] = (
    "identity audit log: 'verify' recomputes the hash chain, 'seal' chains recorded events",
    cmd_audit,
    _audit_args,
)
_COMMANDS["operators"] = (
    "city operators: 'create' makes an operator account",
    cmd_operators,
    _operators_args,
)


def _card_run(args: argparse.Namespace, work: Callable[[Any, Settings], Any]) -> int:
    """Card's subcommands take ``(pool, settings)``."""
    return _run_on_servers(args, lambda pool, _redis, settings: work(pool, settings))


def cmd_card(args: argparse.Namespace) -> int:
    """``citizen card keys status|rotate``, ``citizen card settle [--now]``, ``citizen card personalise``."""
    import datetime as dt

    from card import cli as card_cli

    keyring = Keyring.load(_settings(args))
    pem = Path(args.transport_key).read_bytes() if args.transport_key else None

    async def work(pool: Any, settings: Settings) -> tuple[int, list[str]]:
        if args.action == "keys":
            if args.what == "rotate":
                return 0, await card_cli.keys_rotate(pool, keyring)
            return 0, await card_cli.keys_status(pool, keyring)
        if args.action == "settle":
            now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.UTC)
            if now.tzinfo is None:
                return 2, ["--now needs a time zone, e.g. 2025-06-04T08:00:00+00:00"]
            return 0, await card_cli.settle(pool, now)
        if pem is None:
            return 2, ["personalise needs --transport-key PEM"]
        return 0, await card_cli.personalise(pool, settings, keyring, pem, Path(args.out))

    return _card_run(args, work)


def _card_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["keys", "settle", "personalise"],
        help="keys: status/rotate the issuer keys; settle: move reissued cards' balances that are due;"
        " personalise: export requested physical cards for the bureau",
    )
    parser.add_argument("what", nargs="?", choices=["status", "rotate"], default="status", help="for keys")
    parser.add_argument("--now", help="settle as of this ISO time (default: now)")
    parser.add_argument("--transport-key", help="the bureau's P-256 public key (PEM), for personalise")
    parser.add_argument("--out", default="var/personalisation", help="where personalise writes its files")


_COMMANDS["card"] = ("the citizen card: keys, reissue settlement, personalisation", cmd_card, _card_args)


def cmd_keys(args: argparse.Namespace) -> int:
    """``citizen keys status|rotate``: the OpenID provider's signing keys (identity/oidc/cli.py)."""
    from identity.oidc import cli as oidc_cli

    keyring = Keyring.load(_settings(args))

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        if args.action == "rotate":
            return 0, await oidc_cli.keys_rotate(pool, keyring, settings, args.alg or [], args.delay)
        return 0, await oidc_cli.keys_status(pool, keyring, settings)

    return _identity_run(args, work)


def _keys_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "rotate"], help="status: list keys; rotate: new keys")
    parser.add_argument("--alg", action="append", choices=["ES256", "RS256", "EdDSA"], help="default: all")
    parser.add_argument("--delay", type=int, help="seconds the new key is published before it signs")


def cmd_clients(args: argparse.Namespace) -> int:
    """``citizen clients create|list``: OpenID clients (the admin API does the same, audited)."""
    from identity.oidc import cli as oidc_cli

    async def work(pool: Any, _client: Any, settings: Settings) -> tuple[int, list[str]]:
        if args.action == "list":
            return 0, await oidc_cli.clients_list(pool, settings)
        raw: dict[str, Any] = {"name": args.name or "client", "redirect_uris": args.redirect_uri or []}
        if args.client_id:
            raw["client_id"] = args.client_id
        if args.public:
            raw.update(client_type="public", auth_method="none")
        elif args.auth_method:
            raw["auth_method"] = args.auth_method
        if args.scope:
            raw["scopes"] = args.scope
        if args.grant_type:
            raw["grant_types"] = args.grant_type
        return 0, await oidc_cli.clients_create(pool, settings, raw)

    return _identity_run(args, work)


def _clients_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["create", "list"], help="create: register a client; list: all")
    parser.add_argument("--client-id", help="default: generated")
    parser.add_argument("--name", help="shown on the login and consent pages")
    parser.add_argument("--redirect-uri", action="append", help="exact redirect URI (repeat for several)")
    parser.add_argument("--public", action="store_true", help="a public client (PKCE, no secret)")
    parser.add_argument("--auth-method", choices=["client_secret_basic", "client_secret_post"])
    parser.add_argument("--scope", action="append", help="an allowed scope (repeat)")
    parser.add_argument("--grant-type", action="append", help="an allowed grant type (repeat)")


_COMMANDS["keys"] = ("OpenID signing keys: 'status', or 'rotate' (publish before sign)", cmd_keys, _keys_args)
_COMMANDS["clients"] = (
    "OpenID clients: 'create' (the secret is shown once) or 'list'",
    cmd_clients,
    _clients_args,
)


def cmd_messages(args: argparse.Namespace) -> int:
    """``citizen messages poll``: one pass of the application-status poll (integrations.messages.poll)."""
    from integrations.messages.poll import poll_once

    keyring = Keyring.load(_settings(args))

    async def work(pool: Any, client: Any, settings: Settings) -> tuple[int, list[str]]:
        return 0, await poll_once(pool, client, settings, keyring)

    return _identity_run(args, work)


def _messages_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=["poll"], help="poll: notify changes of government applications (run from a timer)"
    )


_COMMANDS["messages"] = (
    "the in-app inbox: 'poll' notifies application changes",
    cmd_messages,
    _messages_args,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citizen", description="The citizen super-app backend.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, handler, add_arguments) in _COMMANDS.items():
        command = sub.add_parser(name, help=summary, description=summary)
        add_arguments(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except SettingsError as exc:
        print(f"citizen: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
