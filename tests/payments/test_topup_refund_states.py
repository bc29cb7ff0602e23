"""The order's state while several of its refunds are under way: ``refunded`` only once the
refunds that succeeded make up its amount and none is still open at its channel, so that a refund
refused late leaves its money loadable (physical card) or refundable again (virtual card)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess
from payments.demo import platform_account_id
from payments.ledger import lookup_balances
from payments.ledger.check import check_ledger
from payments.topup import orders
from payments.topup.kiosk import held_topups
from payments.topup.orders import HOLDING_ACCOUNT
from tests.payments import test_topup
from tests.payments.channel_helpers import channel_faults
from tests.payments.test_topup import API, own_service
from tests.payments.test_topup_refunds import after_query_delay, credited, refund, refund_rows

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen

Client = AsyncTestClient[Litestar]
CHANNEL = "wechatpay"  # its refunds can stay PROCESSING until the simulator's control settles them


async def _settle_at_channel(url: str, refund_no: str, status: str) -> None:
    async with httpx.AsyncClient() as control:
        answer = await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": status})
        assert answer.json()["ok"], answer.text


async def _one_open_one_succeeded(client: Client, citizen: dict[str, str], url: str, order: Any) -> str:
    """Refund 3000 of the 5000 (left PROCESSING at the channel), then the other 2000 (refunded)."""
    async with httpx.AsyncClient() as control:
        await channel_faults(control, url, refunds_processing=1)
    first = await refund(client, citizen, order, 3000, "states-refund-A1")
    assert (first.status_code, first.json()["state"]) == (200, "processing"), first.text
    second = await refund(client, citizen, order, 2000, "states-refund-B1")
    assert (second.status_code, second.json()["state"]) == (200, "succeeded"), second.text
    return str(first.json()["refund_no"])


async def _order(client: Client, citizen: dict[str, str], order: Any) -> tuple[str, int]:
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    return view["state"], view["refunded_amount"]


async def _held(db: Any) -> int:
    holding = platform_account_id(HOLDING_ACCOUNT)
    return (await lookup_balances(db, [holding]))[holding].available


async def test_a_refund_refused_after_another_succeeded_leaves_a_physical_top_up_loadable(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    await db.execute("UPDATE card.cards SET physical = true")
    order = await credited(client, citizen, simulators.urls, CHANNEL)
    url = simulators.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(client, citizen, url, order)
    # Everything is reserved or refunded, but 3000 have no outcome yet: not refunded in full.
    assert await _order(client, citizen, order) == ("awaiting_load", 5000)
    await _settle_at_channel(url, open_no, "CLOSED")  # the channel gives up on the 3000
    async with own_service(settings_with_upstreams, keyring) as service:
        counts = await service.sweep(after_query_delay(service))
    assert (counts["refunds_checked"], counts["refunds_failed"]) == (1, 1)
    assert await refund_rows(db, order) == [("failed", 3000), ("succeeded", 2000)]
    assert await _order(client, citizen, order) == ("awaiting_load", 2000)
    assert await _held(db) == 3000
    [held] = await held_topups(db, uuid.UUID(order["card_id"]))  # a kiosk can load what is left
    assert (held.order_id, held.amount) == (uuid.UUID(order["id"]), 3000)
    # ...or the citizen can have it refunded, which then completes the order's refund.
    again = await refund(client, citizen, order, 3000, "states-refund-C1")
    assert (again.status_code, again.json()["state"]) == (200, "succeeded"), again.text
    assert await _order(client, citizen, order) == ("refunded", 5000)
    assert await _held(db) == 0
    assert await check_ledger(db) == []


async def test_a_virtual_top_up_is_refunded_once_its_last_open_refund_succeeds(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, CHANNEL)
    url = simulators.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(client, citizen, url, order)
    assert await _order(client, citizen, order) == ("credited", 5000)
    await _settle_at_channel(url, open_no, "SUCCESS")
    async with own_service(settings_with_upstreams, keyring) as service:
        counts = await service.sweep(after_query_delay(service))
    assert (counts["refunds_checked"], counts["refunds_succeeded"]) == (1, 1)
    assert await refund_rows(db, order) == [("succeeded", 3000), ("succeeded", 2000)]
    assert await _order(client, citizen, order) == ("refunded", 5000)
    assert await check_ledger(db) == []


async def test_an_order_marked_refunded_with_a_refund_still_open_is_reopened_when_it_is_refused(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    """An order moved to ``refunded`` before the rule above (its earlier state in its events)."""
    order = await credited(client, citizen, simulators.urls, CHANNEL)
    url = simulators.urls[CHANNEL]
    open_no = await _one_open_one_succeeded(client, citizen, url, order)
    async with db.transaction():  # as the code before that rule did (an event records it)
        await orders.transition_txn(db, uuid.UUID(order["id"]), ("credited",), "refunded", "refunded in full")
    assert await _order(client, citizen, order) == ("refunded", 5000)
    await _settle_at_channel(url, open_no, "CLOSED")
    async with own_service(settings_with_upstreams, keyring) as service:
        await service.sweep(after_query_delay(service))
    assert await refund_rows(db, order) == [("failed", 3000), ("succeeded", 2000)]
    assert await _order(client, citizen, order) == ("credited", 2000)
    reopened = await db.fetchval(
        "SELECT count(*) FROM identity.audit_events WHERE action = 'payments.topup.reopened' "
        "AND target_id = $1",
        order["id"],
    )
    assert reopened == 1
    again = await refund(client, citizen, order, 3000, "states-refund-C2")  # refundable again
    assert (again.status_code, again.json()["state"]) == (200, "succeeded"), again.text
    assert await _order(client, citizen, order) == ("refunded", 5000)
    assert await check_ledger(db) == []
