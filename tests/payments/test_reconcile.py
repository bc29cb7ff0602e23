"""Reconciliation finds exactly the mismatches the channel simulator's fault mode plants."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx

from payments.clearing.audit import Actor
from payments.clearing.reconcile import reconcile_channel
from tests.payments.channel_helpers import channel_faults
from tests.payments.conftest import Topups
from tests.payments.test_topup import app, citizen, client, pay_and_notify  # noqa: F401

CHINA = dt.timezone(dt.timedelta(hours=8))


async def test_planted_mismatches_and_nothing_else(topups: Topups) -> None:
    t = topups
    for _ in range(4):
        _, response = await t.notified("alipay")
        assert response.status_code == 200
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["alipay"], drop=1, extra=1, amount=1)
    today = dt.datetime.now(CHINA).date()
    async with t.service() as service:
        result = await reconcile_channel(service.pool, service.connectors["alipay"], today)
        again = await reconcile_channel(service.pool, service.connectors["alipay"], today)
        clean = await reconcile_channel(service.pool, service.connectors["unionpay"], today)
    assert result.matched == 2
    assert (result.count("platform_only"), result.count("channel_only"), result.count("amount_mismatch")) == (
        1,
        1,
        1,
    )
    [mismatch] = [i for i in result.items if i.kind == "amount_mismatch"]
    assert (mismatch.platform_amount, mismatch.channel_amount) == (5000, 5100)
    assert again.items == result.items
    assert (clean.matched, clean.items) == (0, [])
    assert await t.db.fetchval("SELECT count(*) FROM payments.suspense_items WHERE state = 'open'") == 3
    assert uuid.UUID(str(await t.db.fetchval("SELECT id FROM payments.suspense_items LIMIT 1")))


async def _our_refund(db: Any, order_id: str, refund_no: str, amount: int, state: str) -> None:
    # Our refund record as payments.topup.refunds leaves it; how it got there is not under test.
    await db.execute(
        "INSERT INTO payments.refunds (id, refund_no, order_id, amount, reason, state, transfer_id, "
        "created_at, completed_at) VALUES ($1, $2, $3, $4, 'test', $5, $1, now(), "
        "CASE WHEN $5 IN ('succeeded', 'failed') THEN now() END)",
        uuid.uuid4(),
        refund_no,
        uuid.UUID(order_id),
        amount,
        state,
    )


async def test_refunds_are_reconciled_into_the_four_buckets(topups: Topups) -> None:
    t = topups
    order, response = await t.notified("wechatpay")
    assert response.status_code in {200, 204}  # WeChat Pay's success answer has no body
    tag = uuid.uuid4().hex[:8].upper()
    ours = {  # refund -> (our amount, our state); None: we have no such refund
        "MATCHED": (1000, "succeeded"),
        "FAILED": (1000, "failed"),  # the channel paid it back, our answer was lost: the review's case
        "OPEN": (500, "requested"),  # still without an outcome at T+1 while the channel paid it
        "AMOUNT": (800, "succeeded"),
        "UNKNOWN": None,
        "OURS": (700, "succeeded"),
        "PENDING": (300, "requested"),
        "REFUSED": (300, "failed"),
    }
    theirs = {"MATCHED": 1000, "FAILED": 1000, "OPEN": 500, "AMOUNT": 900, "UNKNOWN": 500}
    for name, mine in ours.items():
        if mine is not None:
            await _our_refund(t.db, order["id"], f"RF{tag}{name}", *mine)
    today = dt.datetime.now(CHINA).date()
    clerk = Actor(kind="operator", id="os:clerk")
    async with t.service() as service:
        connector = service.connectors["wechatpay"]
        for name, amount in theirs.items():
            assert await connector.refund(order["order_no"], f"RF{tag}{name}", amount, 5000)
        result = await reconcile_channel(service.pool, connector, today, actor=clerk)
        again = await reconcile_channel(service.pool, connector, today, actor=clerk)
    found = {
        (i.refund_no or "").removeprefix(f"RF{tag}"): (
            i.kind,
            i.platform_amount,
            i.channel_amount,
            i.platform_state,
        )
        for i in result.items
    }
    assert found == {
        "FAILED": ("channel_only", None, 1000, "failed"),
        "OPEN": ("channel_only", None, 500, "requested"),
        "AMOUNT": ("amount_mismatch", 800, 900, "succeeded"),
        "UNKNOWN": ("channel_only", None, 500, None),
        "OURS": ("platform_only", 700, None, "succeeded"),
    }
    assert {i.order_no for i in result.items} == {order["order_no"]}
    assert (result.matched, result.refunds_matched, result.refunds_pending) == (1, 1, 1)
    assert again.items == result.items
    stored = await t.db.fetch(
        "SELECT refund_no, kind, platform_state FROM payments.suspense_items WHERE state = 'open' "
        "ORDER BY refund_no"
    )
    assert [(r["refund_no"].removeprefix(f"RF{tag}"), r["kind"]) for r in stored] == [
        ("AMOUNT", "amount_mismatch"),
        ("FAILED", "channel_only"),
        ("OPEN", "channel_only"),
        ("OURS", "platform_only"),
        ("UNKNOWN", "channel_only"),
    ]
    row = await t.db.fetchrow(
        "SELECT matched, channel_only, platform_only, mismatched, refunds_matched, refunds_pending "
        "FROM payments.reconciliations WHERE business_date = $1 AND channel = 'wechatpay'",
        today,
    )
    assert tuple(row.values()) == (1, 3, 1, 1, 1, 1)


async def test_each_reconciliation_run_is_audited_with_its_counts(topups: Topups) -> None:
    t = topups
    await pay_and_notify(t.client, t.citizen, t.urls, "alipay", 5000)  # paid, never notified
    today = dt.datetime.now(CHINA).date()
    clerk = Actor(kind="operator", id="os:clerk")
    async with t.service() as service:
        await reconcile_channel(service.pool, service.connectors["alipay"], today, actor=clerk)
        await reconcile_channel(service.pool, service.connectors["alipay"], today, actor=clerk)
    events = await t.db.fetch(
        "SELECT actor_kind, actor_id, target_kind, target_id, outcome, details FROM identity.audit_events "
        "WHERE action = 'payments.reconciliation.run' ORDER BY occurred_at"
    )
    assert [(e["actor_kind"], e["actor_id"], e["target_kind"], e["outcome"]) for e in events] == [
        ("operator", "os:clerk", "reconciliation", "success")
    ] * 2
    assert events[0]["target_id"] == f"alipay:{today.isoformat()}"
    first, second = (json.loads(e["details"]) for e in events)
    assert first == {
        "channel": "alipay",
        "business_date": today.isoformat(),
        "matched": 0,
        "refunds_matched": 0,
        "refunds_pending": 0,
        "channel_only": 1,  # the channel took the money; we never heard (no personal data logged)
        "platform_only": 0,
        "amount_mismatch": 0,
        "suspense_opened": 1,
    }
    assert second == first | {"suspense_opened": 0}  # a re-run finds its suspense item already open
