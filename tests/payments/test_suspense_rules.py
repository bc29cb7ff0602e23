"""A re-issued statement reopens a line that was resolved on other figures (reconcile); the
resolutions' own rules follow."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx

from payments.clearing.audit import Actor
from payments.clearing.reconcile import reconcile_channel
from payments.clearing.suspense import (
    Resolution,
    ResolutionRefused,
    ResolveSuspense,
    SuspenseItem,
    SuspenseItemResolved,
    resolve_item,
)
from tests.payments.channel_helpers import channel_faults
from tests.payments.conftest import Topups
from tests.payments.test_topup import app, citizen, client  # noqa: F401

CHINA = dt.timezone(dt.timedelta(hours=8))
CLERK = Actor(kind="operator", id="os:clerk")


def _today() -> dt.date:
    return dt.datetime.now(CHINA).date()


async def _resolve(t: Topups, item_id: uuid.UUID, resolution: Resolution, note: str = "checked") -> Any:
    """The resolved item, or the refusal (raised inside resolve_item, returned here)."""
    async with t.service() as service:
        try:
            return await resolve_item(
                service.pool, item_id, ResolveSuspense(resolution=resolution, note=note), CLERK
            )
        except (ResolutionRefused, SuspenseItemResolved) as exc:
            return exc


async def _reconcile(t: Topups, channel: str, day: dt.date) -> None:
    async with t.service() as service:
        await reconcile_channel(service.pool, service.connectors[channel], day)


async def _state(t: Topups, item_id: uuid.UUID) -> tuple[str, str | None]:
    row = await t.db.fetchrow("SELECT state, resolution FROM payments.suspense_items WHERE id = $1", item_id)
    return row["state"], row["resolution"]


async def test_a_reissued_statement_reopens_a_line_resolved_on_other_figures(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("alipay", 5000)
    today = _today()
    # The channel's first statement left the order out; the platform-only item was written off.
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["alipay"], drop=1)
    await _reconcile(t, "alipay", today)
    [first] = await t.db.fetch("SELECT id FROM payments.suspense_items")
    assert isinstance(await _resolve(t, first["id"], Resolution.WRITTEN_OFF), SuspenseItem)
    await _reconcile(t, "alipay", today)  # the same statement again: nothing new
    assert await t.db.fetchval("SELECT count(*) FROM payments.suspense_items") == 1
    # The channel re-issues it: now it lists the order, for 5100.
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["alipay"], drop=0, amount=1)
    await _reconcile(t, "alipay", today)
    await _reconcile(t, "alipay", today)  # and again: the new item is open, nothing more
    rows = await t.db.fetch(
        "SELECT id, kind, state, platform_amount, channel_amount, supersedes FROM payments.suspense_items "
        "WHERE order_no = $1 ORDER BY created_at",
        order["order_no"],
    )
    assert [(r["kind"], r["state"], r["platform_amount"], r["channel_amount"]) for r in rows] == [
        ("platform_only", "resolved", 5000, None),
        ("amount_mismatch", "open", 5000, 5100),
    ]
    assert rows[1]["supersedes"] == first["id"]
    opened = [
        json.loads(r["details"])["suspense_opened"]
        for r in await t.db.fetch(
            "SELECT details FROM identity.audit_events WHERE action = 'payments.reconciliation.run' "
            "ORDER BY occurred_at"
        )
    ]
    assert opened == [1, 0, 1, 0]
    # Resolved in turn, the same figures again open nothing.
    corrected = await _resolve(t, rows[1]["id"], Resolution.WRITTEN_OFF)
    assert isinstance(corrected, SuspenseItem)
    await _reconcile(t, "alipay", today)
    assert await t.db.fetchval("SELECT count(*) FROM payments.suspense_items") == 2
