"""Refunds of top-ups when the channel's answer is lost, late or still processing, and the money
a refund may take (never the overdraft; a physical card's unloaded top-up only once)."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from payments.channels.base import RefundStatus
from payments.demo import platform_account, platform_account_id
from payments.ledger import AccountFlags, AccountResult, create_accounts, lookup_balances
from payments.ledger.check import check_ledger
from payments.posting import PurchasePosting, open_operator, post_purchases
from payments.topup import idempotency
from payments.topup.kiosk import begin_kiosk_load_txn, held_topups
from payments.topup.models import RefundRequest
from payments.topup.orders import HOLDING_ACCOUNT
from payments.topup.refunds import refund_topup
from payments.topup.service import SYSTEM, TopupService
from tests.payments import test_topup
from tests.payments.channel_helpers import channel_faults
from tests.payments.conftest import Topups
from tests.payments.test_topup import API, balance_of

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card (as
# ``topups``, tests/payments/conftest.py).
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen

CHINA = dt.timezone(dt.timedelta(hours=8))
Client = AsyncTestClient[Litestar]


async def credited(t: Topups, channel: str) -> Any:
    """A 5000-fen top-up paid through ``channel`` and notified: credited (or awaiting a kiosk)."""
    order, answer = await t.notified(channel)
    assert answer.status_code in (200, 204), answer.text
    return order


async def refund(t: Topups, order: Any, amount: int, key: str) -> httpx.Response:
    return await t.client.post(
        f"{API}/{order['id']}/refund", json={"amount": amount}, headers={**t.citizen, "Idempotency-Key": key}
    )


async def available(db: Any, card_id: str) -> int:
    """What the e-purse can still give: posted balance less what refunds hold reserved."""
    account = await db.fetchval(
        "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", uuid.UUID(card_id)
    )
    return (await lookup_balances(db, [account]))[account].available


async def refund_rows(db: Any, order: Any) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT state, amount FROM payments.refunds WHERE order_id = $1 ORDER BY created_at",
        uuid.UUID(order["id"]),
    )
    return [(r["state"], int(r["amount"])) for r in rows]


async def channel_refunds(service: TopupService, channel: str, order: Any) -> list[int]:
    statement = await service.connectors[channel].statement(dt.datetime.now(CHINA).date())
    return [e.amount for e in statement if e.kind == "refund" and e.order_no == order["order_no"]]


async def process_stops(order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
    """A channel's refund in a process that stops before it asks the channel."""
    raise RuntimeError("the process stopped before asking the channel")


def after_query_delay(service: TopupService) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.settings.query_after + 1)


async def test_a_refund_whose_answer_was_lost_is_asked_about_not_voided(topups: Topups) -> None:
    t = topups
    order = await credited(t, "wechatpay")
    async with httpx.AsyncClient() as control:  # the channel refunds, its answer arrives garbled
        (await control.post(f"{t.urls['wechatpay']}/_control", json={"malformed_next": 1})).raise_for_status()
    answer = await refund(t, order, 5000, "refund-lost-0001")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "succeeded"  # the refund's status, queried, says refunded
    async with t.service() as service:
        assert await channel_refunds(service, "wechatpay", order) == [5000]
    assert await balance_of(t.db, order["card_id"]) == 0  # given back once: by the channel, not here too
    assert await refund_rows(t.db, order) == [("succeeded", 5000)]
    view = await t.view(order)
    assert (view["state"], view["refunded_amount"]) == ("refunded", 5000)
    assert await check_ledger(t.db) == []


async def test_a_refund_with_no_answer_stays_reserved_and_the_sweep_sends_it_again(topups: Topups) -> None:
    t = topups
    order = await credited(t, "alipay")
    async with httpx.AsyncClient() as control:  # the refund and the query right after it: HTTP 500
        (await control.post(f"{t.urls['alipay']}/_control", json={"fail_next": 2})).raise_for_status()
    answer = await refund(t, order, 2000, "refund-none-0001")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "processing"
    assert await refund_rows(t.db, order) == [("processing", 2000)]
    assert await available(t.db, order["card_id"]) == 3000  # still reserved: neither spent nor given back
    async with t.service() as service:
        assert await channel_refunds(service, "alipay", order) == []  # it never reached the channel
        counts = await service.sweep(after_query_delay(service))
        assert (counts["refunds_checked"], counts["refunds_succeeded"]) == (1, 1)
        assert await channel_refunds(service, "alipay", order) == [2000]  # sent again, same number
        again = await service.sweep(after_query_delay(service))
        assert again["refunds_checked"] == 0
    assert await refund_rows(t.db, order) == [("succeeded", 2000)]
    assert await balance_of(t.db, order["card_id"]) == 3000
    view = await t.view(order)
    assert (view["state"], view["refunded_amount"]) == ("credited", 2000)
    assert await check_ledger(t.db) == []


async def test_a_refund_wechat_keeps_processing_is_voided_only_when_the_channel_closes_it(
    topups: Topups,
) -> None:
    t = topups
    order = await credited(t, "wechatpay")
    url = t.urls["wechatpay"]
    async with httpx.AsyncClient() as control:
        await channel_faults(control, url, refunds_processing=1)
    answer = await refund(t, order, 5000, "refund-proc-0001")
    assert answer.json()["state"] == "processing"  # WeChat's PROCESSING is no refusal
    refund_no = answer.json()["refund_no"]
    async with t.service() as service:
        counts = await service.sweep(after_query_delay(service))
        assert (counts["refunds_checked"], counts["refunds_succeeded"], counts["refunds_failed"]) == (1, 0, 0)
        assert await refund_rows(t.db, order) == [("processing", 5000)]
        assert await available(t.db, order["card_id"]) == 0
        async with httpx.AsyncClient() as control:
            closed = await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": "CLOSED"})
            assert closed.json()["ok"], closed.text
        counts = await service.sweep(after_query_delay(service))
        assert counts["refunds_failed"] == 1
    assert await refund_rows(t.db, order) == [("failed", 5000)]
    assert await available(t.db, order["card_id"]) == 5000  # the channel gave up: the citizen's again
    view = await t.view(order)
    assert (view["state"], view["refunded_amount"]) == ("credited", 0)
    assert await t.audited("payments.topup.refund.refused", "failure", order["id"]) == 1
    assert await check_ledger(t.db) == []


async def test_a_refund_left_requested_by_a_crash_is_settled_by_the_sweep(topups: Topups) -> None:
    t = topups
    order = await credited(t, "unionpay")
    async with t.service() as service:
        connector = service.connectors["unionpay"]

        connector.refund = process_stops  # type: ignore[method-assign]
        with contextlib.suppress(RuntimeError):
            await refund_topup(
                service, uuid.UUID(order["id"]), person_id=None, amount=1500, reason="test", actor=SYSTEM
            )
        del connector.refund  # the class's own again
        assert await refund_rows(t.db, order) == [("requested", 1500)]
        assert await available(t.db, order["card_id"]) == 3500
        counts = await service.sweep(after_query_delay(service))
        assert counts["refunds_succeeded"] == 1
        assert await channel_refunds(service, "unionpay", order) == [1500]
    assert await refund_rows(t.db, order) == [("succeeded", 1500)]
    assert await balance_of(t.db, order["card_id"]) == 3500


async def test_a_retried_refund_key_after_a_crash_replays_the_reserved_refund(topups: Topups) -> None:
    t = topups
    order = await credited(t, "unionpay")
    person = await t.db.fetchval("SELECT person_id FROM payments.topup_orders")
    request = RefundRequest(amount=1500)
    async with t.service() as service:
        operation = f"refund:{order['id']}"
        claim = await idempotency.claim(
            service.pool, str(person), "refund-crash-01", operation, request, status=200
        )
        assert isinstance(claim, idempotency.Claim)

        service.connectors["unionpay"].refund = process_stops  # type: ignore[method-assign]
        with contextlib.suppress(RuntimeError):
            await refund_topup(
                service, uuid.UUID(order["id"]), person_id=person, amount=1500, reason=request.reason,
                actor=SYSTEM, claim=claim,
            )  # fmt: skip
    retry = await refund(t, order, 1500, "refund-crash-01")
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotency-replayed"] == "true"
    assert retry.json()["state"] == "requested"  # the sweep settles it; no second refund
    assert await refund_rows(t.db, order) == [("requested", 1500)]


async def test_a_refund_never_takes_the_e_purse_into_its_overdraft(topups: Topups) -> None:
    t = topups
    order = await credited(t, "alipay")
    account = await t.db.fetchval(
        "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", uuid.UUID(order["card_id"])
    )
    # A card issued with an overdraft allowance (card.settings.default_overdraft_limit_fen).
    await t.db.execute("UPDATE payments.accounts SET overdraft_limit = 2000 WHERE id = $1", account)
    await open_operator(t.db, "metro")
    [ride] = await post_purchases(
        t.db,
        [
            PurchasePosting(
                card_id=order["card_id"], counter=1, amount=5000, operator="metro",
                occurred_at=dt.datetime.now(dt.UTC), epurse_account_id=account,
            )
        ],
    )  # fmt: skip
    assert ride.ok
    assert await balance_of(t.db, order["card_id"]) == 0  # everything spent
    answer = await refund(t, order, 2000, "refund-overdraft-1")
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"].endswith("amount-refused")
    assert await balance_of(t.db, order["card_id"]) == 0  # not -2000
    assert await refund_rows(t.db, order) == []
    assert await t.audited("payments.topup.refund", "denied", order["id"]) == 1


async def test_a_partly_refunded_physical_topup_is_loaded_for_what_is_left(topups: Topups) -> None:
    t = topups
    await t.db.execute("UPDATE card.cards SET physical = true")
    order = await credited(t, "wechatpay")
    card_id = uuid.UUID(order["card_id"])
    answer = await refund(t, order, 2000, "refund-phys-0001")
    assert answer.json()["state"] == "succeeded"
    [held] = await held_topups(t.db, card_id)
    assert held.amount == 3000  # 20 yuan already went back through the channel
    # A refund whose outcome is open holds the order back from the kiosks until it is settled.
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["wechatpay"], refunds_processing=1)
    assert (await refund(t, order, 1000, "refund-phys-0002")).json()["state"] == "processing"
    assert await held_topups(t.db, card_id) == []
    async with t.db.transaction():
        assert await begin_kiosk_load_txn(t.db, card_id) is None
    async with t.service() as service:
        refund_no = await t.db.fetchval("SELECT refund_no FROM payments.refunds WHERE state = 'processing'")
        async with httpx.AsyncClient() as control:
            url = t.urls["wechatpay"]
            await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": "SUCCESS"})
        await service.sweep(after_query_delay(service))
    async with t.db.transaction():
        began = await begin_kiosk_load_txn(t.db, card_id)
    assert began is not None and began.amount == 2000
    holding = platform_account_id(HOLDING_ACCOUNT)
    flags = await t.db.fetchval("SELECT flags FROM payments.accounts WHERE id = $1", holding)
    assert flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS  # it can never give out more than it holds
    assert (await lookup_balances(t.db, [holding]))[holding].available == 2000


async def test_an_existing_holding_account_gets_its_balance_rule_by_migration(db: Any) -> None:
    migration = (
        importlib.resources.files("payments.migrations") / "0011_holding_account_balance_rule.sql"
    ).read_text()
    holding = platform_account(HOLDING_ACCOUNT)
    assert await create_accounts(db, [holding]) == [AccountResult.OK]
    # As a database made before the rule holds it: no flags.
    await db.execute("UPDATE payments.accounts SET flags = 0, credits_posted = 900 WHERE id = $1", holding.id)
    await db.execute(migration)
    assert await db.fetchval("SELECT flags FROM payments.accounts WHERE id = $1", holding.id) == holding.flags
    # One that already gave out more than it held is not silently flagged: the migration stops.
    await db.execute("UPDATE payments.accounts SET flags = 0, debits_posted = 901 WHERE id = $1", holding.id)
    with pytest.raises(asyncpg.RaiseError, match="gave out more than it holds"):
        await db.execute(migration)
    assert await db.fetchval("SELECT flags FROM payments.accounts WHERE id = $1", holding.id) == 0
