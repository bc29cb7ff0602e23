"""The payments subcommands: ``ledger check``, ``settle``, ``reconcile``, ``payments sweep|suspense|
suspense-resolve`` (their work is in payments/cli.py)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.cli._common import Commands, date_args, run_on_servers, settings_from
from backend.keyring import Keyring
from backend.runtime import migrate_database, resolved_services
from backend.settings import Settings

COMMANDS: Commands = {}


def cmd_ledger(args: argparse.Namespace) -> int:
    """``citizen ledger check``: every invariant of the payments ledger (payments/ledger/check.py)."""
    from backend.db import create_pool
    from payments.cli import ledger_check

    settings = settings_from(args)
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


def _ledger_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check"], help="check: verify the ledger's invariants")


COMMANDS["ledger"] = ("the payments ledger: 'check' verifies its invariants", cmd_ledger, _ledger_args)


def _payments_run(args: argparse.Namespace, work: Callable[[Any, Settings, Keyring], Any]) -> int:
    """Payments' subcommands take ``(pool, settings, keyring)``."""
    return run_on_servers(args, lambda pool, _redis, settings: work(pool, settings, Keyring.load(settings)))


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
    """``citizen payments sweep``: query un-notified top-up orders, close expired ones (once);
    ``citizen payments suspense [--all]`` and ``suspense-resolve ID --resolution R --note N``:
    reconciliation's suspense items, listed and resolved."""
    import datetime as dt

    from payments.cli import suspense_list, suspense_resolve, sweep_once

    async def work(pool: Any, settings: Settings, keyring: Keyring) -> tuple[int, list[str]]:
        if args.action == "suspense":
            try:
                day = dt.date.fromisoformat(args.date) if args.date else None
            except ValueError:
                return 2, [f"--date {args.date!r} is not a date (YYYY-MM-DD)"]
            return await suspense_list(pool, all_states=args.all, business_date=day, channel=args.channel)
        if args.action == "suspense-resolve":
            if not (args.id and args.resolution and args.note):
                return 2, ["suspense-resolve needs ID, --resolution and --note"]
            return await suspense_resolve(pool, args.id, args.resolution, args.note, args.reference)
        return await sweep_once(pool, settings, keyring)

    return _payments_run(args, work)


def _settle_args(parser: argparse.ArgumentParser) -> None:
    date_args(parser)
    parser.add_argument("--out", help="folder for the operators' files (default: <data dir>/settlement)")


def _payments_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=["sweep", "suspense", "suspense-resolve"],
        help="sweep: query and close stale top-up orders; suspense: list reconciliation's open"
        " suspense items; suspense-resolve: resolve one",
    )
    parser.add_argument("id", nargs="?", help="suspense-resolve: the suspense item's id")
    parser.add_argument("--all", action="store_true", help="suspense: resolved items too")
    parser.add_argument("--date", help="suspense: only this business date, YYYY-MM-DD")
    parser.add_argument("--channel", help="suspense: only this channel")
    parser.add_argument(
        "--resolution",
        help="suspense-resolve: how it was explained (credited_late, refund_settled, timing_difference,"
        " channel_refunded, channel_corrected, written_off: payments/clearing/suspense.py)",
    )
    parser.add_argument("--note", help="suspense-resolve: what you found (1 to 500 characters)")
    parser.add_argument("--reference", help="suspense-resolve: the channel's refund or correction number")


COMMANDS["settle"] = (
    "clearing and settlement to operators for one day (re-runnable)",
    cmd_settle,
    _settle_args,
)
COMMANDS["reconcile"] = (
    "reconcile top-ups against each channel's statement for one day",
    cmd_reconcile,
    date_args,
)
COMMANDS["payments"] = (
    "payments jobs: 'sweep' queries and closes stale top-ups; 'suspense', 'suspense-resolve'",
    cmd_payments,
    _payments_args,
)
