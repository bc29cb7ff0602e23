"""The integrations subcommands: ``messages poll`` (integrations/messages/poll.py)."""

from __future__ import annotations

import argparse
from typing import Any

from backend.cli._common import Commands, run_on_servers, settings_from
from backend.keyring import Keyring
from backend.settings import Settings

COMMANDS: Commands = {}


def cmd_messages(args: argparse.Namespace) -> int:
    """``citizen messages poll``: one pass of the application-status poll (integrations.messages.poll)."""
    from integrations.messages.poll import poll_once

    keyring = Keyring.load(settings_from(args))

    async def work(pool: Any, client: Any, settings: Settings) -> tuple[int, list[str]]:
        return 0, await poll_once(pool, client, settings, keyring)

    return run_on_servers(args, work)


def _messages_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=["poll"], help="poll: notify changes of government applications (run from a timer)"
    )


COMMANDS["messages"] = (
    "the in-app inbox: 'poll' notifies application changes",
    cmd_messages,
    _messages_args,
)
