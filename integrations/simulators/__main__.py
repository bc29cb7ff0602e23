"""``python -m integrations.simulators``: serve every simulated upstream (see ``server``)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from integrations.simulators.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="citizen simulators", description="Serve the simulated upstream services."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port for every upstream (default: any free one)")
    parser.add_argument(
        "--watch-stdin", action="store_true", help="stop when standard input closes (for a parent process)"
    )


def run(args: argparse.Namespace) -> int:
    # The credentials derive from the keyring's "simulator" key, as the app's connectors do.
    from backend.keyring import Keyring
    from backend.observability import configure_logging
    from backend.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_json and not sys.stderr.isatty())
    key = Keyring.load(settings, names=("simulator",)).get("simulator")
    # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again: exit 0 then.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _exit_quietly)
    try:
        asyncio.run(serve(key, args.host, args.port, watch_stdin=args.watch_stdin))
    except KeyboardInterrupt:
        return 130
    return 0


def _exit_quietly(_number: int, _frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
