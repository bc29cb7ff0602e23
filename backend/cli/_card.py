"""The card subcommands: issuer keys, balance moves after reissue, personalisation (card/cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.cli._common import Commands, run_on_servers, settings_from
from backend.keyring import Keyring
from backend.settings import Settings

COMMANDS: Commands = {}


def _card_run(args: argparse.Namespace, work: Callable[[Any, Settings], Any]) -> int:
    """Card's subcommands take ``(pool, settings)``."""
    return run_on_servers(args, lambda pool, _redis, settings: work(pool, settings))


def cmd_card(args: argparse.Namespace) -> int:
    """``citizen card keys status|rotate``, ``citizen card settle [--now]``, ``citizen card personalise``,
    ``citizen card loads [--json]``."""
    import datetime as dt

    from card import cli as card_cli

    keyring = Keyring.load(settings_from(args))
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
            return 0, await card_cli.settle(pool, now, settings, keyring)
        if args.action == "loads":
            return await card_cli.resolve_loads(pool, settings, as_json=args.json)
        if pem is None:
            return 2, ["personalise needs --transport-key PEM"]
        return 0, await card_cli.personalise(pool, settings, keyring, pem, Path(args.out))

    return _card_run(args, work)


def _card_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["keys", "settle", "personalise", "loads"],
        help="keys: status/rotate the issuer keys; settle: move reissued cards' balances that are due;"
        " personalise: export requested physical cards for the bureau; loads: resolve the online loads"
        " kiosks left unconfirmed on the cards' evidence, list the doubtful ones (re-runnable)",
    )
    parser.add_argument("what", nargs="?", choices=["status", "rotate"], default="status", help="for keys")
    parser.add_argument("--now", help="settle as of this ISO time (default: now)")
    parser.add_argument("--transport-key", help="the bureau's P-256 public key (PEM), for personalise")
    parser.add_argument("--out", default="var/personalisation", help="where personalise writes its files")
    parser.add_argument("--json", action="store_true", help="loads: the summary as one JSON object")


COMMANDS["card"] = (
    "the citizen card: keys, reissue settlement, personalisation, unconfirmed loads",
    cmd_card,
    _card_args,
)
