"""The ``citizen`` command. Every subcommand has ``--help``.

One module per concern (httpx-style small private modules): ``_serve`` (serve, migrate, demo,
services, settings, simulators, gateway), one per domain (``_identity``, ``_card``, ``_payments``,
``_integrations``) and ``_bench``. Each holds a ``COMMANDS`` table; this module only joins them
into the parser. The domains' own work lives in their ``cli.py``; these modules parse arguments and
give it servers.
"""

from __future__ import annotations

import argparse
import sys

from backend.cli._common import Commands
from backend.settings import SettingsError

from . import _bench, _card, _identity, _integrations, _payments, _serve

__all__ = ["build_parser", "main"]

# The order of ``citizen --help``: the shell's commands first, then the domains'.
_COMMANDS: Commands = {
    **_serve.COMMANDS,
    **_bench.COMMANDS,
    **_payments.COMMANDS,
    **_identity.COMMANDS,
    **_card.COMMANDS,
    **_integrations.COMMANDS,
}


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
