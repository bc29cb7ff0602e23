"""A refund the channel pays back twice: listed on two days' statements, matched once. The first
day whose reconciliation matched it claims it (payments.matched_refunds); listed on another day it
is channel-only, and a re-run of the claiming day still matches it."""

from __future__ import annotations

import datetime as dt
import uuid

from payments.clearing.reconcile import reconcile_channel
from tests.payments.conftest import Topups
from tests.payments.test_reconcile import CHINA, _our_refund
from tests.payments.test_topup import app, citizen, client, pay_and_notify  # noqa: F401


async def test_a_refund_listed_again_on_another_day_is_channel_only(topups: Topups) -> None:
    t = topups
    order, _ = await t.notified("wechatpay")
    refund_no = f"RF{uuid.uuid4().hex[:8].upper()}TWICE"
    await _our_refund(t.db, order["id"], refund_no, 1000, "succeeded")
    today = dt.datetime.now(CHINA).date()
    async with t.service() as service:
        connector = service.connectors["wechatpay"]
        assert await connector.refund(order["order_no"], refund_no, 1000, 5000)
        first = await reconcile_channel(service.pool, connector, today)
        assert first.refunds_matched == 1 and not [i for i in first.items if i.refund_no == refund_no]
        again = await reconcile_channel(service.pool, connector, today)  # the claiming day again
        assert again.refunds_matched == 1 and again.items == first.items
        claim = await t.db.fetchval(
            "SELECT business_date FROM payments.matched_refunds WHERE channel = 'wechatpay' "
            "AND refund_no = $1",
            refund_no,
        )
        assert claim == today
        # As if yesterday's statement had listed (and matched) the same refund: today's line is the
        # channel paying it back a second time.
        await t.db.execute(
            "UPDATE payments.matched_refunds SET business_date = $2 WHERE refund_no = $1",
            refund_no,
            today - dt.timedelta(days=1),
        )
        twice = await reconcile_channel(service.pool, connector, today)
    [item] = [i for i in twice.items if i.refund_no == refund_no]
    assert (item.kind, item.platform_amount, item.channel_amount, item.platform_state) == (
        "channel_only", None, 1000, "succeeded",
    )  # fmt: skip
    assert twice.refunds_matched == 0
    opened = await t.db.fetchval(
        "SELECT count(*) FROM payments.suspense_items WHERE refund_no = $1 AND kind = 'channel_only' "
        "AND state = 'open'",
        refund_no,
    )
    assert opened == 1
