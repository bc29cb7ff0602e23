"""The payments subcommands of ``citizen`` (registered in ``backend/cli/_payments.py``).

``citizen ledger check``, ``citizen settle --date D``, ``citizen reconcile --date D``,
``citizen payments sweep``, and the suspense items reconciliation opens: ``citizen payments
suspense [--all]`` lists them, ``citizen payments suspense-resolve ID --resolution R --note N
[--reference REF]`` resolves one (``payments.clearing.suspense``). Each returns (exit code, lines
for stdout); progress goes to stderr. Settling, reconciling and resolving are audited under the
person running the command (:func:`cli_actor`), and so is listing the suspense items (the lines
show order numbers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import httpx

from payments._db import Pool
from payments.channels import ChannelConnector, ChannelError, build_connectors
from payments.channels.config import channel_configs
from payments.clearing.audit import Actor, audit_txn
from payments.clearing.reconcile import reconcile_channel
from payments.clearing.settlement import SettlementChanged, SettlementRefused, settle
from payments.clearing.suspense import (
    Resolution,
    ResolveSuspense,
    StateFilter,
    SuspenseItem,
    list_items,
    resolve_item,
)
from payments.errors import PaymentsError
from payments.ledger.check import check_ledger
from payments.settings import PaymentsSettings
from payments.topup.service import TopupService

__all__ = [
    "cli_actor",
    "ledger_check",
    "reconcile_day",
    "settle_day",
    "suspense_list",
    "suspense_resolve",
    "sweep_once",
    "yuan",
]


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def cli_actor(name: str | None = None) -> Actor:
    """Who runs a payments command, for the audit log: ``name`` when given, else the login behind
    ``sudo`` (whose own user is root), else the OS user. ``os:`` marks a login on the machine, not
    an account of the platform's operators."""
    who = name or os.environ.get("SUDO_USER")
    if not who:
        try:
            who = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            who = f"uid {os.getuid()}"
    return Actor(kind="operator", id=f"os:{who}")


async def ledger_check(pool: Pool) -> int:
    """``citizen ledger check``: 0 when every invariant holds; else 1, the first discrepancy on stderr."""
    found = await check_ledger(pool, limit=1)
    if found:
        first = found[0]
        print(f"ledger check failed [{first.check}]: {first.detail}", file=sys.stderr)  # noqa: T201
        return 1
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM payments.accounts) AS accounts, "
        "(SELECT count(*) FROM payments.transfers) AS transfers, "
        "(SELECT count(*) FROM payments.pending_transfers WHERE state = 'pending') AS open_pending"
    )
    assert row is not None
    print(  # noqa: T201
        f"ledger check passed: {row['accounts']} accounts, {row['transfers']} transfers, "
        f"{row['open_pending']} open pending transfers"
    )
    return 0


class ProgressLine:
    """``settle 2026-03-02 [#####-----] 3/6 cap rebates`` on one line of a terminal, else a line per step."""

    def __init__(self, title: str, stream: TextIO = sys.stderr) -> None:
        self.title = title
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, done: int, total: int, label: str) -> None:
        width = 20
        bar = "#" * (width * done // max(total, 1))
        line = f"{self.title} [{bar:-<{width}}] {done}/{total} {label}"
        if self.tty:
            end = "\n" if done >= total else ""
            self.stream.write(f"\r\x1b[2K{line}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


async def settle_day(
    pool: Pool,
    day: dt.date,
    *,
    key: bytes,
    fee_bps: int,
    out_dir: Path | None,
    stream: TextIO = sys.stderr,
    actor: Actor | None = None,
) -> tuple[int, list[str]]:
    """``citizen settle --date D``: settle, write the files, describe; safe to run again."""
    try:
        report = await settle(
            pool,
            day,
            key=key,
            fee_bps=fee_bps,
            progress=ProgressLine(f"settle {day}", stream),
            actor=actor or cli_actor(),
        )
    except (SettlementRefused, SettlementChanged) as exc:
        return 1, [f"settlement of {day} refused: {exc}"]
    lines = [
        f"window {report.window_from:%Y-%m-%d %H:%M:%S%z} .. {report.window_to:%Y-%m-%d %H:%M:%S%z} "
        "(ledger time)"
    ]
    folder = out_dir / day.isoformat() if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for op in report.operators:
        lines.append(
            f"{op.operator}: {op.taps} taps ({op.late_taps} late, {op.concession_taps} concession), "
            f"gross {yuan(op.gross)}, rebates {yuan(op.rebates)} ({op.rebate_transfers} transfers), "
            f"fees {yuan(op.fees)}, net payable {yuan(op.net)}"
            + (f" -> transfer {op.transfer_id}" if op.transfer_id else "")
        )
        matched = len(op.terminals) - len(op.terminal_differences)
        if op.terminals:
            lines.append(
                f"  terminal settlements: {matched} matched, {len(op.terminal_differences)} different"
            )
        for t in op.terminal_differences:
            lines.append(
                f"  terminal {t.terminal_id} batches {t.batch_from}-{t.batch_to}: terminal "
                f"{t.terminal_count} taps {yuan(t.terminal_amount)}, host {t.host_count} taps "
                f"{yuan(t.host_amount)} (difference {t.terminal_count - t.host_count} taps, "
                f"{yuan(t.terminal_amount - t.host_amount)})"
            )
        if folder is not None:
            (folder / op.file_name).write_bytes(op.file)
            lines.append(f"  file {folder / op.file_name}")
    total = sum(op.net for op in report.operators)
    what = (
        "re-run: the ledger already held every transfer, nothing moved"
        if report.rerun and report.created == 0
        else f"{report.created} ledger transfers made"
    )
    lines.append(
        f"settled {day}: {len(report.operators)} operator(s), {sum(o.taps for o in report.operators)} taps, "
        f"net payable {yuan(total)}; {what}"
    )
    return 0, lines


@contextlib.asynccontextmanager
async def channel_connectors(settings: Any, keyring: Any) -> AsyncIterator[dict[str, ChannelConnector]]:
    key = keyring.get("simulator") if settings.environment.value != "production" else None
    async with httpx.AsyncClient() as client:
        yield build_connectors(channel_configs(settings.integrations, key), client)


async def reconcile_day(
    pool: Pool, settings: Any, keyring: Any, day: dt.date, actor: Actor | None = None
) -> tuple[int, list[str]]:
    """``citizen reconcile --date D``: every configured channel's statement against our paid orders
    and refunds."""
    actor = actor or cli_actor()
    async with channel_connectors(settings, keyring) as connectors:
        if not connectors:
            return 1, [
                "no payment channel is configured (CITIZEN_UPSTREAM_UNIONPAY_URL, _ALIPAY_, _WECHATPAY_)"
            ]
        code, lines = 0, []
        for name, connector in sorted(connectors.items()):
            try:
                result = await reconcile_channel(pool, connector, day, actor=actor)
            except ChannelError as exc:
                code = 1
                lines.append(f"{name}: statement unavailable: {exc}")
                continue
            lines.append(
                f"{name}: {result.matched} matched, {result.refunds_matched} refunds matched "
                f"({result.refunds_pending} awaiting an outcome), {result.count('channel_only')} "
                f"channel-only, {result.count('platform_only')} platform-only, "
                f"{result.count('amount_mismatch')} amount mismatches"
            )
            lines += [
                f"  {i.kind} {i.order_no}"
                + (f" refund {i.refund_no} (ours: {i.platform_state or 'none'})" if i.refund_no else "")
                + f": platform {i.platform_amount} fen, channel {i.channel_amount} fen (suspense item open)"
                for i in result.items
            ]
        return code, lines


async def sweep_once(pool: Pool, settings: Any, keyring: Any) -> tuple[int, list[str]]:
    """``citizen payments sweep``: query the orders never notified, close the expired ones."""
    section: PaymentsSettings = settings.payments
    async with channel_connectors(settings, keyring) as connectors:
        service = TopupService(pool, section, connectors, section.notify_base_url or settings.public_url)
        counts = await service.sweep()
    return 0, ["sweep: " + ", ".join(f"{k} {v}" for k, v in counts.items())]


def _suspense_line(item: SuspenseItem) -> str:
    fen = "none" if item.platform_amount is None else f"{item.platform_amount} fen"
    their = "none" if item.channel_amount is None else f"{item.channel_amount} fen"
    line = (
        f"{item.id} {item.business_date} {item.channel} {item.kind} {item.order_no}"
        + (f" refund {item.refund_no} (ours: {item.platform_state or 'none'})" if item.refund_no else "")
        + f": platform {fen}, channel {their}"
    )
    if item.state == "resolved":
        line += f" - {item.resolution} by {item.resolved_by} at {item.resolved_at:%Y-%m-%d %H:%M:%S%z}"
    return line


async def suspense_list(
    pool: Pool,
    *,
    all_states: bool = False,
    business_date: dt.date | None = None,
    channel: str | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[str]]:
    """``citizen payments suspense [--all]``: the open suspense items (every one with ``--all``),
    500 at most, one per line, with the id ``suspense-resolve`` takes. Audited as the API's listing
    is (``payments.suspense.list``, the filter and the count: the lines show order numbers)."""
    state: StateFilter = "all" if all_states else "open"
    page = await list_items(pool, state=state, business_date=business_date, channel=channel, limit=500)
    details = {
        "state": state,
        "business_date": business_date.isoformat() if business_date else None,
        "channel": channel,
        "count": len(page.items),
    }
    async with pool.acquire() as db, db.transaction():
        await audit_txn(db, actor or cli_actor(), "suspense.list", None, details)
    lines = [_suspense_line(i) for i in page.items]
    more = " (the first 500; narrow with --date or --channel)" if page.next_after else ""
    what = "suspense items" if all_states else "open suspense items"
    return 0, [*lines, f"{len(page.items)} {what}{more}"]


async def suspense_resolve(  # noqa: PLR0917 - the command's arguments
    pool: Pool,
    item_id: str,
    resolution: str,
    note: str,
    reference: str | None = None,
    actor: Actor | None = None,
) -> tuple[int, list[str]]:
    """``citizen payments suspense-resolve ID --resolution R --note N [--reference REF]``; refused
    (exit 1, the reason) as the API would refuse it, and audited either way."""
    try:
        parsed = uuid.UUID(item_id)
        request = ResolveSuspense(resolution=Resolution(resolution), note=note, reference=reference)
    except ValueError:
        choices = ", ".join(r.value for r in Resolution)
        return 2, [f"suspense-resolve: ID is a suspense item's id and R one of {choices}"]
    try:
        item = await resolve_item(pool, parsed, request, actor or cli_actor())
    except PaymentsError as exc:
        return 1, [f"suspense item {item_id} not resolved ({exc.problem_type}): {exc}"]
    return 0, [_suspense_line(item)]
