"""Read-only figures for the console that no admin API answers yet: terminal activity per minute,
online terminals, daily settlements with their files, terminal settlement checks and the
channels' reconciliation reports.

Only the console reads these, behind the readers' roles (support, security_admin, auditor). They
are plain SELECTs over card's and payments' tables, kept in this one module so that they can move
behind those domains' admin APIs without touching the pages.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any, Final

import msgspec
import pygal  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from pygal.style import Style  # type: ignore[import-untyped]

from backend.db import Pool

# pygal appends a legacy ``sys.meta_path`` finder (for its map plugins, unused here) that makes every
# later import miss warn (ImportWarning: no find_spec); take it out again.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

__all__ = [
    "Activity",
    "TerminalRow",
    "activity",
    "activity_chart",
    "reconciliations",
    "settlement_file",
    "settlements",
    "terminal_settlements",
    "terminals_online",
]

_SESSION_PREFIX: Final = "card:term:s:"  # card.terminal.host.sessions: a live signed-on session
KINDS: Final = {1: "bus", 2: "gate", 3: "kiosk"}


class TerminalRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    operator: str
    kind: str
    line: str | None
    status: str
    online: bool
    last_sign_on_at: dt.datetime | None
    parameter_version: int | None
    blacklist_version: int | None
    uploads_per_minute: float


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    minutes: list[dt.datetime]
    accepted: list[int]
    rejected: list[int]


async def terminals_online(redis: aioredis.Redis, ids: list[str]) -> set[str]:
    """Terminals with a live session (signed on, not timed out) in the gateway's Redis state."""
    if not ids:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for terminal_id in ids:
            _ = pipe.exists(_SESSION_PREFIX + terminal_id)  # queued, answered by execute()
        found = await pipe.execute()
    return {terminal_id for terminal_id, alive in zip(ids, found, strict=True) if alive}


async def uploads_per_minute(pool: Pool, window_minutes: int = 10) -> dict[str, float]:
    rows = await pool.fetch(
        "SELECT terminal_id, count(*) AS n FROM card.terminal_batches"
        " WHERE received_at > now() - make_interval(mins => $1) GROUP BY terminal_id",
        window_minutes,
    )
    return {r["terminal_id"]: r["n"] / window_minutes for r in rows}


def terminal_rows(
    listed: list[dict[str, Any]], online: set[str], uploads: dict[str, float]
) -> list[TerminalRow]:
    """The admin API's terminal list joined with liveness and upload rates."""
    rows = []
    for t in listed:
        kind = t.get("kind")
        rows.append(
            TerminalRow(
                id=str(t["id"]),
                operator=str(t["operator"]),
                kind=KINDS.get(kind, str(kind)) if isinstance(kind, int) else str(kind),
                line=t.get("line"),
                status=str(t["status"]),
                online=str(t["id"]) in online,
                last_sign_on_at=_time(t.get("last_sign_on_at")),
                parameter_version=t.get("parameter_version"),
                blacklist_version=t.get("blacklist_version"),
                uploads_per_minute=round(uploads.get(str(t["id"]), 0.0), 1),
            )
        )
    return rows


def _time(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


async def activity(pool: Pool, minutes: int = 60, now: dt.datetime | None = None) -> Activity:
    """Uploaded records per minute of receipt, accepted and suspended (rejected), oldest first."""
    end = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    start = end - dt.timedelta(minutes=minutes - 1)
    rows = await pool.fetch(
        "SELECT date_trunc('minute', received_at) AS minute,"
        " count(*) FILTER (WHERE status = 'accepted') AS accepted,"
        " count(*) FILTER (WHERE status <> 'accepted') AS rejected"
        " FROM card.terminal_records WHERE received_at >= $1 GROUP BY 1",
        start,
    )
    by_minute = {r["minute"]: (r["accepted"], r["rejected"]) for r in rows}
    slots = [start + dt.timedelta(minutes=i) for i in range(minutes)]
    return Activity(
        minutes=slots,
        accepted=[by_minute.get(m, (0, 0))[0] for m in slots],
        rejected=[by_minute.get(m, (0, 0))[1] for m in slots],
    )


def activity_chart(data: Activity, *, title: str, accepted: str, rejected: str) -> bytes:
    """A stacked bar chart (pygal SVG, no script, no external resource)."""
    style = Style(
        background="white",
        plot_background="white",
        colors=("#2e7d32", "#c62828"),
        font_family="sans-serif",
        title_font_size=14,
        label_font_size=10,
        legend_font_size=11,
    )
    chart = pygal.StackedBar(
        style=style,
        js=[],  # no tooltip script from a CDN
        width=900,
        height=280,
        title=title,
        show_minor_x_labels=False,
        truncate_label=-1,
        x_label_rotation=0,
        legend_at_bottom=True,
        print_values=False,
        include_x_axis=True,
        min_scale=1,
    )
    china = dt.timezone(dt.timedelta(hours=8))
    chart.x_labels = [m.astimezone(china).strftime("%H:%M") for m in data.minutes]
    chart.x_labels_major = chart.x_labels[::10]
    chart.add(accepted, data.accepted)
    chart.add(rejected, data.rejected)
    rendered: bytes = chart.render()
    return rendered


async def settlements(pool: Pool, limit: int = 30) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT business_date, operator, taps, gross, fees, net, file_name, octet_length(file) AS size"
        " FROM payments.settlements ORDER BY business_date DESC, operator LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def settlement_file(pool: Pool, business_date: dt.date, operator: str) -> tuple[str, bytes] | None:
    row = await pool.fetchrow(
        "SELECT file_name, file FROM payments.settlements WHERE business_date = $1 AND operator = $2",
        business_date,
        operator,
    )
    return (row["file_name"], bytes(row["file"])) if row is not None else None


async def terminal_settlements(pool: Pool, limit: int = 20) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT s.terminal_id, t.operator, s.batch_from, s.batch_to, s.terminal_count, s.terminal_amount,"
        " s.host_count, s.host_amount, s.matched, s.created_at FROM card.terminal_settlements s"
        " LEFT JOIN card.terminals t ON t.id = s.terminal_id ORDER BY s.created_at DESC LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]


async def reconciliations(pool: Pool, limit: int = 30) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT business_date, channel, matched, channel_only, platform_only, mismatched, created_at"
        " FROM payments.reconciliations ORDER BY business_date DESC, channel LIMIT $1",
        limit,
    )
    return [dict(r) for r in rows]
