"""The facts a resolution rests on explain one suspense item each (payments.clearing.suspense_rules),
and a re-issued statement reopens a line that was resolved on other figures (reconcile)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

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
DAY = dt.timedelta(days=1)


def _today() -> dt.date:
    return dt.datetime.now(CHINA).date()


async def _item(
    t: Topups,
    day: dt.date,
    order_no: str,
    kind: str,
    amount: int,
    *,
    channel: str = "alipay",
    refund_no: str | None = None,
) -> uuid.UUID:
    """A suspense item as reconciliation opens it for a line of ``day`` (tested in test_reconcile)."""
    item_id = uuid.uuid4()
    await t.db.execute(
        "INSERT INTO payments.suspense_items (id, business_date, channel, order_no, kind, platform_amount, "
        "channel_amount, refund_no) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        item_id, day, channel, order_no, kind, amount if kind == "platform_only" else None,
        amount if kind == "channel_only" else None, refund_no,
    )  # fmt: skip
    return item_id


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


async def test_a_payment_booked_before_the_channels_line_does_not_explain_it(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("alipay", 5000)  # paid and credited today, matched today
    today = _today()
    await _reconcile(t, "alipay", today)
    # The channel lists the order again the next two days: a second and a third collection.
    later = [await _item(t, today + n * DAY, order["order_no"], "channel_only", 5000) for n in (1, 2)]
    for item_id in later:
        refused = await _resolve(t, item_id, Resolution.CREDITED_LATE)
        assert isinstance(refused, ResolutionRefused), refused
        assert f"paid on {today}, before the channel's line of" in str(refused)
        assert await _state(t, item_id) == ("open", None)
    assert await t.audited("payments.suspense.resolve", "failure", str(later[0])) == 1


async def test_the_day_our_order_was_booked_must_not_have_matched_it(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("alipay", 5000)
    today = _today()
    # The channel also listed it yesterday: ours was booked today, where the channel lists it too.
    earlier = await _item(t, today - DAY, order["order_no"], "channel_only", 5000)
    unknown = await _resolve(t, earlier, Resolution.CREDITED_LATE)
    assert isinstance(unknown, ResolutionRefused) and "not reconciled yet" in str(unknown)
    await _reconcile(t, "alipay", today)  # matched today
    matched = await _resolve(t, earlier, Resolution.CREDITED_LATE)
    assert isinstance(matched, ResolutionRefused), matched
    assert f"the channel listed our order on {today}" in str(matched)


async def _booked_today_listed_earlier(t: Topups, days: tuple[int, ...]) -> tuple[Any, list[uuid.UUID]]:
    """An order booked today that the channel's statement of today leaves out (platform-only), and
    channel-only items for it ``days`` days before."""
    order, _ = await t.notified("alipay", 5000)
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["alipay"], drop=1)
    await _reconcile(t, "alipay", _today())
    items = [await _item(t, _today() - n * DAY, order["order_no"], "channel_only", 5000) for n in days]
    return order, items


async def test_one_payment_of_ours_explains_one_channel_line(topups: Topups) -> None:
    t = topups
    today = _today()
    order, (first, second) = await _booked_today_listed_earlier(t, (1, 2))
    done = await _resolve(t, first, Resolution.CREDITED_LATE)
    assert isinstance(done, SuspenseItem) and done.resolution == "credited_late"
    refused = await _resolve(t, second, Resolution.CREDITED_LATE)
    assert isinstance(refused, ResolutionRefused), refused
    assert f"line of {today - DAY} (credited_late)" in str(refused)
    # Nor can today's platform-only item pair with the other channel line: the payment is spent.
    [ours] = await t.db.fetch(
        "SELECT id FROM payments.suspense_items WHERE business_date = $1 AND order_no = $2",
        today,
        order["order_no"],
    )
    paired = await _resolve(t, ours["id"], Resolution.TIMING_DIFFERENCE)
    assert isinstance(paired, ResolutionRefused) and "(credited_late)" in str(paired)
    assert await _state(t, second) == ("open", None)
    evidence = await t.db.fetchval(
        "SELECT details FROM identity.audit_events WHERE action = 'payments.suspense.resolve' "
        "AND outcome = 'success' AND target_id = $1",
        str(first),
    )
    assert json.loads(evidence)["evidence"].endswith(f", paid on {today} (platform-only there)")
    # The database says it too, whatever the code checked.
    with pytest.raises(asyncpg.UniqueViolationError, match="suspense_items_explained_once"):
        await t.db.execute(
            "UPDATE payments.suspense_items SET state = 'resolved', resolved_at = now(), "
            "resolved_by = 'sql', resolution = 'credited_late', note = 'x' WHERE id = $1",
            second,
        )


async def _until_waiting_on_a_lock(t: Topups, task: asyncio.Task[Any]) -> None:
    """Until a session of the test's database waits for a lock (``task``'s, the only other one)."""
    for _ in range(200):
        assert not task.done(), task.result()
        waiting = await t.db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the resolution never waited for the other transaction")


async def test_two_lines_resolved_at_once_on_one_payment_one_is_refused(
    topups: Topups, database_url: str
) -> None:
    t = topups
    _, (first, second) = await _booked_today_listed_earlier(t, (1, 2))
    # Another resolver has closed the first line and not committed yet: the check cannot see it,
    # the unique index waits for it, then refuses; the refusal is audited as any other.
    other: Any = await asyncpg.connect(database_url)
    try:
        async with other.transaction():
            await other.execute(
                "UPDATE payments.suspense_items SET state = 'resolved', resolved_at = now(), "
                "resolved_by = 'os:other', resolution = 'credited_late', note = 'x' WHERE id = $1",
                first,
            )
            racing = asyncio.create_task(_resolve(t, second, Resolution.CREDITED_LATE))
            await _until_waiting_on_a_lock(t, racing)
        refused = await racing
    finally:
        await other.close()
    assert isinstance(refused, ResolutionRefused) and "suspense_items_explained_once" in str(refused)
    assert await _state(t, second) == ("open", None)
    assert await t.audited("payments.suspense.resolve", "failure", str(second)) == 1


async def _our_refund(t: Topups, order_id: str, refund_no: str, amount: int, at: dt.datetime) -> None:
    await t.db.execute(
        "INSERT INTO payments.refunds (id, refund_no, order_id, amount, reason, state, transfer_id, "
        "created_at, completed_at) VALUES ($1, $2, $3, $4, 'test', 'succeeded', $1, $5, $5)",
        uuid.uuid4(), refund_no, uuid.UUID(order_id), amount, at,
    )  # fmt: skip


async def test_one_refund_success_explains_one_channel_refund_line(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("wechatpay", 5000)
    today = _today()
    refund_no = f"RF{uuid.uuid4().hex[:10].upper()}"
    await _our_refund(t, order["id"], refund_no, 1000, dt.datetime.now(dt.UTC))  # succeeded today
    # The channel listed the refund while ours had no outcome, twice: two days, two items.
    lines = [
        await _item(t, today - n * DAY, order["order_no"], "channel_only", 1000, channel="wechatpay",
                    refund_no=refund_no)
        for n in (1, 0)
    ]  # fmt: skip
    done = await _resolve(t, lines[0], Resolution.REFUND_SETTLED)
    assert isinstance(done, SuspenseItem), done
    twice = await _resolve(t, lines[1], Resolution.REFUND_SETTLED)
    assert isinstance(twice, ResolutionRefused) and "(refund_settled)" in str(twice)
    # A success before the channel's line does not explain it either.
    tomorrow = await _item(t, today + DAY, order["order_no"], "channel_only", 1000, channel="wechatpay",
                           refund_no=refund_no)  # fmt: skip
    before = await _resolve(t, tomorrow, Resolution.REFUND_SETTLED)
    assert isinstance(before, ResolutionRefused) and f"succeeded on {today}, before" in str(before)


async def test_a_timing_difference_pairs_two_items_once(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("alipay", 5000)
    today, order_no = _today(), order["order_no"]
    ours = await _item(t, today - DAY, order_no, "platform_only", 5000)
    theirs = [await _item(t, today + n * DAY, order_no, "channel_only", 5000) for n in (0, 1, 2)]
    first = await _resolve(t, theirs[0], Resolution.TIMING_DIFFERENCE, note="dated after midnight")
    assert isinstance(first, SuspenseItem) and first.counterpart_id == ours
    row = await t.db.fetchrow(
        "SELECT state, resolution, counterpart_id, note FROM payments.suspense_items WHERE id = $1", ours
    )
    assert (row["state"], row["resolution"], row["counterpart_id"]) == (
        "resolved",
        "timing_difference",
        theirs[0],
    )
    assert row["note"].startswith(f"timing difference paired with suspense item {theirs[0]}")
    for item_id in theirs[1:]:
        refused = await _resolve(t, item_id, Resolution.TIMING_DIFFERENCE)
        assert isinstance(refused, ResolutionRefused) and "no open platform_only item" in str(refused)
        assert await _state(t, item_id) == ("open", None)
    # An item written off is not there to pair with either.
    written = await _item(t, today - 5 * DAY, order_no, "platform_only", 7000)
    assert isinstance(await _resolve(t, written, Resolution.WRITTEN_OFF), SuspenseItem)
    lone = await _item(t, today - 4 * DAY, order_no, "channel_only", 7000)
    assert isinstance(await _resolve(t, lone, Resolution.TIMING_DIFFERENCE), ResolutionRefused)
    events = await t.db.fetch(
        "SELECT target_id, details FROM identity.audit_events WHERE action = 'payments.suspense.resolve' "
        "AND outcome = 'success' AND details->>'resolution' = 'timing_difference'"
    )
    paired = {e["target_id"]: json.loads(e["details"])["paired_with"] for e in events}
    assert paired == {str(theirs[0]): str(ours), str(ours): str(theirs[0])}


async def test_both_sides_resolved_at_once_pair_once_without_deadlock(topups: Topups) -> None:
    t = topups
    today = _today()
    for _ in range(4):
        order_no = f"T{uuid.uuid4().hex[:16].upper()}"  # a timing difference reads no order of ours
        ours = await _item(t, today - DAY, order_no, "platform_only", 5000)
        theirs = await _item(t, today, order_no, "channel_only", 5000)
        # From either side, at once: one resolution pairs them, the other finds its item resolved.
        results = await asyncio.gather(
            _resolve(t, ours, Resolution.TIMING_DIFFERENCE), _resolve(t, theirs, Resolution.TIMING_DIFFERENCE)
        )
        assert sorted(type(r).__name__ for r in results) == ["SuspenseItem", "SuspenseItemResolved"]
        rows = await t.db.fetch(
            "SELECT id, counterpart_id FROM payments.suspense_items WHERE id = ANY($1::uuid[])",
            [ours, theirs],
        )
        assert {r["id"]: r["counterpart_id"] for r in rows} == {ours: theirs, theirs: ours}


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
