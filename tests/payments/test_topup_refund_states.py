"""The order's state while several of its refunds are under way: ``refunded`` only once the
refunds that succeeded make up its amount and none is still open at its channel, so that a refund
refused late leaves its money loadable (physical card) or refundable again (virtual card)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from payments.demo import platform_account_id
from payments.ledger import lookup_balances
from payments.ledger.check import check_ledger
from payments.topup import orders
from payments.topup.kiosk import held_topups
from payments.topup.orders import HOLDING_ACCOUNT
from tests.payments import test_topup
from tests.payments.channel_helpers import channel_faults
from tests.payments.conftest import Topups
from tests.payments.test_topup import API
from tests.payments.test_topup_refunds import after_query_delay, credited, refund, refund_rows

# The top-up tests' fixtures the ``topups`` fixture builds on: an app on the simulators, its client,
# a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen
CHANNEL = "wechatpay"  # its refunds can stay PROCESSING until the simulator's control settles them


async def _settle_at_channel(url: str, refund_no: str, status: str) -> None:
    async with httpx.AsyncClient() as control:
        answer = await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": status})
        assert answer.json()["ok"], answer.text


async def _one_open_one_succeeded(t: Topups, url: str, order: Any) -> str:
    """Refund 3000 of the 5000 (left PROCESSING at the channel), then the other 2000 (refunded)."""
    async with httpx.AsyncClient() as control:
        await channel_faults(control, url, refunds_processing=1)
    first = await refund(t, order, 3000, "states-refund-A1")
    assert (first.status_code, first.json()["state"]) == (200, "processing"), first.text
    second = await refund(t, order, 2000, "states-refund-B1")
    assert (second.status_code, second.json()["state"]) == (200, "succeeded"), second.text
    return str(first.json()["refund_no"])


async def _order(t: Topups, order: Any) -> tuple[str, int]:
    view = (await t.client.get(f"{API}/{order['id']}", headers=t.citizen)).json()
    return view["state"], view["refunded_amount"]


async def _held(db: Any) -> int:
    holding = platform_account_id(HOLDING_ACCOUNT)
    return (await lookup_balances(db, [holding]))[holding].available


async def test_a_refund_refused_after_another_succeeded_leaves_a_physical_top_up_loadable(
    topups: Topups,
) -> None:
    t = topups
    await t.db.execute("UPDATE card.cards SET physical = true")
    order = await credited(t, CHANNEL)
    url = t.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(t, url, order)
    # Everything is reserved or refunded, but 3000 have no outcome yet: not refunded in full.
    assert await _order(t, order) == ("awaiting_load", 5000)
    await _settle_at_channel(url, open_no, "CLOSED")  # the channel gives up on the 3000
    async with t.service() as service:
        counts = await service.sweep(after_query_delay(service))
    assert (counts["refunds_checked"], counts["refunds_failed"]) == (1, 1)
    assert await refund_rows(t.db, order) == [("failed", 3000), ("succeeded", 2000)]
    assert await _order(t, order) == ("awaiting_load", 2000)
    assert await _held(t.db) == 3000
    [held] = await held_topups(t.db, uuid.UUID(order["card_id"]))  # a kiosk can load what is left
    assert (held.order_id, held.amount) == (uuid.UUID(order["id"]), 3000)
    # ...or the citizen can have it refunded, which then completes the order's refund.
    again = await refund(t, order, 3000, "states-refund-C1")
    assert (again.status_code, again.json()["state"]) == (200, "succeeded"), again.text
    assert await _order(t, order) == ("refunded", 5000)
    assert await _held(t.db) == 0
    assert await check_ledger(t.db) == []


async def test_a_virtual_top_up_is_refunded_once_its_last_open_refund_succeeds(topups: Topups) -> None:
    t = topups
    order = await credited(t, CHANNEL)
    url = t.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(t, url, order)
    assert await _order(t, order) == ("credited", 5000)
    await _settle_at_channel(url, open_no, "SUCCESS")
    async with t.service() as service:
        counts = await service.sweep(after_query_delay(service))
    assert (counts["refunds_checked"], counts["refunds_succeeded"]) == (1, 1)
    assert await refund_rows(t.db, order) == [("succeeded", 3000), ("succeeded", 2000)]
    assert await _order(t, order) == ("refunded", 5000)
    assert await check_ledger(t.db) == []


async def test_an_order_marked_refunded_with_a_refund_still_open_is_reopened_when_it_is_refused(
    topups: Topups,
) -> None:
    t = topups
    """An order moved to ``refunded`` before the rule above (its earlier state in its events)."""
    order = await credited(t, CHANNEL)
    url = t.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(t, url, order)
    async with t.db.transaction():  # as the code before that rule did (an event records it)
        await orders.transition_txn(
            t.db, uuid.UUID(order["id"]), ("credited",), "refunded", "refunded in full"
        )
    assert await _order(t, order) == ("refunded", 5000)
    await _settle_at_channel(url, open_no, "CLOSED")
    async with t.service() as service:
        await service.sweep(after_query_delay(service))
    assert await refund_rows(t.db, order) == [("failed", 3000), ("succeeded", 2000)]
    assert await _order(t, order) == ("credited", 2000)
    reopened = await t.db.fetchval(
        "SELECT count(*) FROM identity.audit_events WHERE action = 'payments.topup.reopened' "
        "AND target_id = $1",
        order["id"],
    )
    assert reopened == 1
    again = await refund(t, order, 3000, "states-refund-C2")  # refundable again
    assert (again.status_code, again.json()["state"]) == (200, "succeeded"), again.text
    assert await _order(t, order) == ("refunded", 5000)
    assert await check_ledger(t.db) == []
