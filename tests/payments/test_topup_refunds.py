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

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess
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
from tests.payments.test_topup import API, balance_of, own_service, pay_and_notify

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen

CHINA = dt.timezone(dt.timedelta(hours=8))
Client = AsyncTestClient[Litestar]


async def credited(client: Client, citizen: dict[str, str], urls: dict[str, str], channel: str) -> Any:
    """A 5000-fen top-up paid through ``channel`` and notified: credited (or awaiting a kiosk)."""
    done = await pay_and_notify(client, citizen, urls, channel, 5000)
    delivery = done["delivery"]
    answer = await client.post(
        f"/api/v1/payments/notify/{channel}", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    assert answer.status_code in (200, 204), answer.text
    return done["order"]


async def refund(
    client: Client, citizen: dict[str, str], order: Any, amount: int, key: str
) -> httpx.Response:
    return await client.post(
        f"{API}/{order['id']}/refund", json={"amount": amount}, headers={**citizen, "Idempotency-Key": key}
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


def after_query_delay(service: TopupService) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.settings.query_after + 1)


async def test_a_refund_whose_answer_was_lost_is_asked_about_not_voided(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, "wechatpay")
    async with httpx.AsyncClient() as control:  # the channel refunds, its answer arrives garbled
        (
            await control.post(f"{simulators.urls['wechatpay']}/_control", json={"malformed_next": 1})
        ).raise_for_status()
    answer = await refund(client, citizen, order, 5000, "refund-lost-0001")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "succeeded"  # the refund's status, queried, says refunded
    async with own_service(settings_with_upstreams, keyring) as service:
        assert await channel_refunds(service, "wechatpay", order) == [5000]
    assert await balance_of(db, order["card_id"]) == 0  # given back once: by the channel, not here too
    assert await refund_rows(db, order) == [("succeeded", 5000)]
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    assert (view["state"], view["refunded_amount"]) == ("refunded", 5000)
    assert await check_ledger(db) == []


async def test_a_refund_with_no_answer_stays_reserved_and_the_sweep_sends_it_again(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, "alipay")
    async with httpx.AsyncClient() as control:  # the refund and the query right after it: HTTP 500
        (
            await control.post(f"{simulators.urls['alipay']}/_control", json={"fail_next": 2})
        ).raise_for_status()
    answer = await refund(client, citizen, order, 2000, "refund-none-0001")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "processing"
    assert await refund_rows(db, order) == [("processing", 2000)]
    assert await available(db, order["card_id"]) == 3000  # still reserved: neither spent nor given back
    async with own_service(settings_with_upstreams, keyring) as service:
        assert await channel_refunds(service, "alipay", order) == []  # it never reached the channel
        counts = await service.sweep(after_query_delay(service))
        assert (counts["refunds_checked"], counts["refunds_succeeded"]) == (1, 1)
        assert await channel_refunds(service, "alipay", order) == [2000]  # sent again, same number
        again = await service.sweep(after_query_delay(service))
        assert again["refunds_checked"] == 0
    assert await refund_rows(db, order) == [("succeeded", 2000)]
    assert await balance_of(db, order["card_id"]) == 3000
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    assert (view["state"], view["refunded_amount"]) == ("credited", 2000)
    assert await check_ledger(db) == []


async def test_a_refund_wechat_keeps_processing_is_voided_only_when_the_channel_closes_it(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, "wechatpay")
    url = simulators.urls["wechatpay"]
    async with httpx.AsyncClient() as control:
        await channel_faults(control, url, refunds_processing=1)
    answer = await refund(client, citizen, order, 5000, "refund-proc-0001")
    assert answer.json()["state"] == "processing"  # WeChat's PROCESSING is no refusal
    refund_no = answer.json()["refund_no"]
    async with own_service(settings_with_upstreams, keyring) as service:
        counts = await service.sweep(after_query_delay(service))
        assert (counts["refunds_checked"], counts["refunds_succeeded"], counts["refunds_failed"]) == (1, 0, 0)
        assert await refund_rows(db, order) == [("processing", 5000)]
        assert await available(db, order["card_id"]) == 0
        async with httpx.AsyncClient() as control:
            closed = await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": "CLOSED"})
            assert closed.json()["ok"], closed.text
        counts = await service.sweep(after_query_delay(service))
        assert counts["refunds_failed"] == 1
    assert await refund_rows(db, order) == [("failed", 5000)]
    assert await available(db, order["card_id"]) == 5000  # the channel gave up: the citizen's again
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    assert (view["state"], view["refunded_amount"]) == ("credited", 0)
    refused = await db.fetchval(
        "SELECT count(*) FROM identity.audit_events WHERE action = 'payments.topup.refund.refused' "
        "AND outcome = 'failure' AND target_id = $1",
        order["id"],
    )
    assert refused == 1
    assert await check_ledger(db) == []


async def test_a_refund_left_requested_by_a_crash_is_settled_by_the_sweep(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, "unionpay")
    async with own_service(settings_with_upstreams, keyring) as service:
        connector = service.connectors["unionpay"]

        async def process_stops(order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
            raise RuntimeError("the process stopped before asking the channel")

        connector.refund = process_stops  # type: ignore[method-assign]
        with contextlib.suppress(RuntimeError):
            await refund_topup(
                service, uuid.UUID(order["id"]), person_id=None, amount=1500, reason="test", actor=SYSTEM
            )
        del connector.refund  # the class's own again
        assert await refund_rows(db, order) == [("requested", 1500)]
        assert await available(db, order["card_id"]) == 3500
        counts = await service.sweep(after_query_delay(service))
        assert counts["refunds_succeeded"] == 1
        assert await channel_refunds(service, "unionpay", order) == [1500]
    assert await refund_rows(db, order) == [("succeeded", 1500)]
    assert await balance_of(db, order["card_id"]) == 3500


async def test_a_retried_refund_key_after_a_crash_replays_the_reserved_refund(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = await credited(client, citizen, simulators.urls, "unionpay")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders")
    request = RefundRequest(amount=1500)
    async with own_service(settings_with_upstreams, keyring) as service:
        operation = f"refund:{order['id']}"
        claim = await idempotency.claim(
            service.pool, str(person), "refund-crash-01", operation, request, status=200
        )
        assert isinstance(claim, idempotency.Claim)

        async def process_stops(order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
            raise RuntimeError("the process stopped before asking the channel")

        service.connectors["unionpay"].refund = process_stops  # type: ignore[method-assign]
        with contextlib.suppress(RuntimeError):
            await refund_topup(
                service, uuid.UUID(order["id"]), person_id=person, amount=1500, reason=request.reason,
                actor=SYSTEM, claim=claim,
            )  # fmt: skip
    retry = await refund(client, citizen, order, 1500, "refund-crash-01")
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotency-replayed"] == "true"
    assert retry.json()["state"] == "requested"  # the sweep settles it; no second refund
    assert await refund_rows(db, order) == [("requested", 1500)]


async def test_a_refund_never_takes_the_e_purse_into_its_overdraft(
    client: Client, citizen: dict[str, str], simulators: SimulatorsProcess, db: Any
) -> None:
    order = await credited(client, citizen, simulators.urls, "alipay")
    account = await db.fetchval(
        "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", uuid.UUID(order["card_id"])
    )
    # A card issued with an overdraft allowance (card.settings.default_overdraft_limit_fen).
    await db.execute("UPDATE payments.accounts SET overdraft_limit = 2000 WHERE id = $1", account)
    await open_operator(db, "metro")
    [ride] = await post_purchases(
        db,
        [
            PurchasePosting(
                card_id=order["card_id"], counter=1, amount=5000, operator="metro",
                occurred_at=dt.datetime.now(dt.UTC), epurse_account_id=account,
            )
        ],
    )  # fmt: skip
    assert ride.ok
    assert await balance_of(db, order["card_id"]) == 0  # everything spent
    answer = await refund(client, citizen, order, 2000, "refund-overdraft-1")
    assert answer.status_code == 422, answer.text
    assert answer.json()["type"].endswith("amount-refused")
    assert await balance_of(db, order["card_id"]) == 0  # not -2000
    assert await refund_rows(db, order) == []
    denied = await db.fetchval(
        "SELECT count(*) FROM identity.audit_events WHERE action = 'payments.topup.refund' "
        "AND outcome = 'denied' AND target_id = $1",
        order["id"],
    )
    assert denied == 1


async def test_a_partly_refunded_physical_topup_is_loaded_for_what_is_left(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    await db.execute("UPDATE card.cards SET physical = true")
    order = await credited(client, citizen, simulators.urls, "wechatpay")
    card_id = uuid.UUID(order["card_id"])
    answer = await refund(client, citizen, order, 2000, "refund-phys-0001")
    assert answer.json()["state"] == "succeeded"
    [held] = await held_topups(db, card_id)
    assert held.amount == 3000  # 20 yuan already went back through the channel
    # A refund whose outcome is open holds the order back from the kiosks until it is settled.
    async with httpx.AsyncClient() as control:
        await channel_faults(control, simulators.urls["wechatpay"], refunds_processing=1)
    assert (await refund(client, citizen, order, 1000, "refund-phys-0002")).json()["state"] == "processing"
    assert await held_topups(db, card_id) == []
    async with db.transaction():
        assert await begin_kiosk_load_txn(db, card_id) is None
    async with own_service(settings_with_upstreams, keyring) as service:
        refund_no = await db.fetchval("SELECT refund_no FROM payments.refunds WHERE state = 'processing'")
        async with httpx.AsyncClient() as control:
            url = simulators.urls["wechatpay"]
            await control.post(f"{url}/_control/refunds/{refund_no}", json={"status": "SUCCESS"})
        await service.sweep(after_query_delay(service))
    async with db.transaction():
        began = await begin_kiosk_load_txn(db, card_id)
    assert began is not None and began.amount == 2000
    holding = platform_account_id(HOLDING_ACCOUNT)
    flags = await db.fetchval("SELECT flags FROM payments.accounts WHERE id = $1", holding)
    assert flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS  # it can never give out more than it holds
    assert (await lookup_balances(db, [holding]))[holding].available == 2000


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
