"""Top-ups over HTTP: a citizen with a card, the three channels (the simulators), notifications."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings
from integrations.credentials import dev_credential
from integrations.simulators.process import SimulatorsProcess
from integrations.simulators.seed import PEOPLE
from payments.channels import build_connectors
from payments.channels.config import channel_configs
from payments.channels.crypto import channel_secrets, rsa_sign, sorted_query
from payments.ledger import lookup_balances
from payments.ledger.check import check_ledger
from payments.settings import PaymentsSettings
from payments.topup.kiosk import begin_kiosk_load_txn, finish_kiosk_load_txn, held_topups
from payments.topup.notices import notify_credited_txn
from payments.topup.refunds import refund_card_balance
from payments.topup.service import SYSTEM, TopupService
from tests.identity.conftest import Flows, bearer
from tests.payments.channel_helpers import channel_faults, channel_pay, channel_reset, notifications_of

API = "/api/v1/payments/topups"
CHANNELS = ["unionpay", "alipay", "wechatpay"]


@pytest.fixture
def app(settings_with_upstreams: Settings, keyring: Keyring) -> Litestar:
    return create_app(settings_with_upstreams, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar, simulators: SimulatorsProcess) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with httpx.AsyncClient() as control:
        await channel_reset(control, simulators.urls)
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest_asyncio.fixture
async def citizen(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    session = await Flows(client).verified(PEOPLE[0])
    headers = bearer(session["token"])
    response = await client.post("/api/v1/cards", headers=headers)
    assert response.status_code == 201, response.text
    return headers


@contextlib.asynccontextmanager
async def own_service(settings: Settings, keyring: Keyring) -> AsyncIterator[TopupService]:
    """A service on this test's loop (the app's runs on the test client's own loop)."""
    assert settings.database.url is not None
    pool = await asyncpg.create_pool(settings.database.url.reveal(), min_size=1, max_size=3)
    assert pool is not None
    try:
        async with httpx.AsyncClient() as http:
            configs = channel_configs(settings.integrations, keyring.get("simulator"))
            yield TopupService(pool, PaymentsSettings(), build_connectors(configs, http), "http://test")
    finally:
        await pool.close()


async def balance_of(db: Any, card_id: str) -> int:
    account = await db.fetchval(
        "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", uuid.UUID(card_id)
    )
    return (await lookup_balances(db, [account]))[account].credit_balance


async def create(client: AsyncTestClient[Litestar], headers: dict[str, str], amount: int, key: str) -> Any:
    return await client.post(API, json={"amount": amount}, headers={**headers, "Idempotency-Key": key})


async def pay_and_notify(
    client: AsyncTestClient[Litestar],
    headers: dict[str, str],
    urls: dict[str, str],
    channel: str,
    amount: int,
) -> dict[str, Any]:
    order = (await create(client, headers, amount, f"create-{uuid.uuid4()}")).json()
    paying = await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": channel},
        headers={**headers, "Idempotency-Key": f"pay-{order['id']}"},
    )
    assert paying.status_code == 200, paying.text
    assert paying.json()["state"] == "paying"
    assert paying.json()["pay_url"]
    async with httpx.AsyncClient() as control:
        await channel_pay(control, urls[channel], order["order_no"])
        deliveries = await notifications_of(control, urls[channel], order["order_no"])
    return {"order": order, "delivery": deliveries[0]}


@pytest.mark.parametrize("channel", CHANNELS)
async def test_topup_through_each_channel(
    channel: str,
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    done = await pay_and_notify(client, citizen, simulators.urls, channel, 5000)
    order, delivery = done["order"], done["delivery"]
    notify = f"/api/v1/payments/notify/{channel}"
    first = await client.post(notify, content=delivery["body"].encode(), headers=delivery["headers"])
    assert first.status_code in (200, 204), first.text
    again = await client.post(notify, content=delivery["body"].encode(), headers=delivery["headers"])
    assert again.status_code == first.status_code  # a duplicate is acknowledged, and moves nothing
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    assert view["state"] == "credited"
    assert await balance_of(db, order["card_id"]) == 5000
    outcomes = [
        r["outcome"] for r in await db.fetch("SELECT outcome FROM payments.channel_notifications ORDER BY id")
    ]
    assert outcomes == ["applied", "duplicate"]
    assert await check_ledger(db) == []
    # The citizen's inbox: one "top-up credited" message for the order, the duplicate added none.
    inbox = (await client.get("/api/v1/messages", headers=citizen)).json()["messages"]
    [credited] = [m for m in inbox if m["kind"] == "payments.topup_credited"]
    assert credited["data"] == {
        "order_id": order["id"],
        "order_no": order["order_no"],
        "card_id": order["card_id"],
        "amount": 5000,
        "channel": channel,
    }
    assert "50.00 元已到账" in credited["body"] and order["order_no"] in credited["body"]


async def test_the_credited_message_is_deduplicated_on_the_order(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], simulators: SimulatorsProcess, db: Any
) -> None:
    done = await pay_and_notify(client, citizen, simulators.urls, "alipay", 1234)
    order, delivery = done["order"], done["delivery"]
    await client.post(
        "/api/v1/payments/notify/alipay", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    row = await db.fetchrow("SELECT * FROM payments.topup_orders WHERE id = $1", uuid.UUID(order["id"]))
    assert row["state"] == "credited"
    # A second path reaching "credited" for the same order (say a query racing the notification)
    # writes nothing more: the order id is the message's dedupe key.
    await notify_credited_txn(db, row)
    messages = await db.fetch(
        "SELECT body FROM integrations.messages WHERE kind = 'payments.topup_credited' AND recipient_id = $1",
        row["person_id"],
    )
    assert [m["body"] for m in messages] == [
        f"您的市民卡电子钱包充值 12.34 元已到账（订单号 {order['order_no']}）。"
    ]


async def test_idempotency_keys(client: AsyncTestClient[Litestar], citizen: dict[str, str], db: Any) -> None:
    first = await create(client, citizen, 5000, "key-000001")
    assert first.status_code == 201
    replay = await create(client, citizen, 5000, "key-000001")
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotency-replayed"] == "true"
    other = await create(client, citizen, 6000, "key-000001")
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    missing = await client.post(API, json={"amount": 5000}, headers=citizen)
    assert missing.status_code == 400
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders LIMIT 1")
    await db.execute(
        "INSERT INTO payments.idempotency_keys (scope, key, operation, request_hash, locked_at) "
        "VALUES ($1, 'key-running', 'create', $2, now())",
        str(person),
        __import__("payments.topup.idempotency", fromlist=["_"]).request_hash(
            "create", __import__("payments.topup.models", fromlist=["_"]).CreateTopup(amount=5000)
        ),
    )
    running = await create(client, citizen, 5000, "key-running")
    assert running.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM payments.topup_orders") == 1


async def test_bad_input_is_refused_recorded_and_moves_nothing(
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
    keyring: Keyring,
) -> None:
    for amount in (0, -100, 100_001):
        response = await create(client, citizen, amount, f"bad-amount-{amount}")
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("amount-refused")
    order = (await create(client, citizen, 5000, "good-000001")).json()
    unknown = await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": "paypal"},
        headers={**citizen, "Idempotency-Key": "pay-unknown"},
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("unknown-channel")
    assert (await client.post("/api/v1/payments/notify/paypal", content=b"x=1")).status_code == 422
    # A forged UnionPay notification (signed with a key that is not the channel's).
    forged = {"merId": "1", "orderId": order["order_no"], "queryId": "Q", "txnAmt": "5000", "respCode": "00"}
    forged["signature"] = rsa_sign(
        channel_secrets("not-the-channel").channel_key, sorted_query(forged, exclude=())
    )
    response = await client.post(
        "/api/v1/payments/notify/unionpay",
        content=httpx.QueryParams(forged).__str__().encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    # Genuinely signed by the channel, but for an order we never made, or for another amount.
    await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": "unionpay"},
        headers={**citizen, "Idempotency-Key": "pay-good-1"},
    )
    secrets = channel_secrets(dev_credential(keyring.get("simulator"), "unionpay"))
    for order_no, txn_amount, status in ((("TU" + "0" * 20), "5000", 404), (order["order_no"], "4000", 422)):
        fields = {
            "merId": secrets.merchant_id,
            "orderId": order_no,
            "queryId": "Q1",
            "txnAmt": txn_amount,
            "respCode": "00",
        }
        fields["signature"] = rsa_sign(secrets.channel_key, sorted_query(fields, exclude=("signature",)))
        response = await client.post(
            "/api/v1/payments/notify/unionpay",
            content=str(httpx.QueryParams(fields)).encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == status, response.text
    outcomes = [
        r["outcome"] for r in await db.fetch("SELECT outcome FROM payments.channel_notifications ORDER BY id")
    ]
    assert outcomes == ["unknown channel", "forged", "unknown order", "amount mismatch"]
    assert await db.fetchval("SELECT count(*) FROM payments.transfers WHERE code = 6") == 0
    denied = await db.fetchval(
        "SELECT count(*) FROM identity.audit_events WHERE action LIKE 'payments.%' AND outcome = 'denied'"
    )
    assert denied >= 8
    assert (await client.get(f"{API}/{order['id']}", headers=citizen)).json()["state"] == "paying"


async def test_sweep_queries_unnotified_orders_and_closes_expired(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    async with httpx.AsyncClient() as control:
        await channel_faults(control, simulators.urls["wechatpay"], drop_notifications=True)
    paid = (await pay_and_notify_dropped(client, citizen, simulators.urls))["order"]
    waiting = (await create(client, citizen, 2000, "sweep-waiting")).json()
    await client.post(
        f"{API}/{waiting['id']}/pay",
        json={"channel": "alipay"},
        headers={**citizen, "Idempotency-Key": "sweep-pay-2"},
    )
    never_paid = (await create(client, citizen, 3000, "sweep-created")).json()
    async with own_service(settings_with_upstreams, keyring) as service:
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.settings.query_after + 1)
        counts = await service.sweep(later)
        assert counts["credited"] == 1
        assert (await service.get(None, uuid.UUID(paid["id"]))).state == "credited"
        assert (await service.get(None, uuid.UUID(waiting["id"]))).state == "paying"
        expired = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=service.settings.order_ttl + 1)
        counts = await service.sweep(expired)
        assert counts["closed"] == 2
        assert (await service.get(None, uuid.UUID(waiting["id"]))).state == "closed"
        assert (await service.get(None, uuid.UUID(never_paid["id"]))).state == "closed"
    assert await balance_of(db, paid["card_id"]) == 5000


async def pay_and_notify_dropped(
    client: AsyncTestClient[Litestar], headers: dict[str, str], urls: dict[str, str]
) -> dict[str, Any]:
    order = (await create(client, headers, 5000, "sweep-paid")).json()
    await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": "wechatpay"},
        headers={**headers, "Idempotency-Key": "sweep-pay-1"},
    )
    async with httpx.AsyncClient() as control:
        await channel_pay(control, urls["wechatpay"], order["order_no"])
    return {"order": order}


async def test_refunds_and_a_closed_cards_balance(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    done = await pay_and_notify(client, citizen, simulators.urls, "alipay", 5000)
    order, delivery = done["order"], done["delivery"]
    await client.post(
        "/api/v1/payments/notify/alipay", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    refund = await client.post(
        f"{API}/{order['id']}/refund",
        json={"amount": 1000},
        headers={**citizen, "Idempotency-Key": "refund-0001"},
    )
    assert refund.status_code == 200, refund.text
    assert refund.json()["state"] == "succeeded"
    assert await balance_of(db, order["card_id"]) == 4000
    too_much = await client.post(
        f"{API}/{order['id']}/refund",
        json={"amount": 4001},
        headers={**citizen, "Idempotency-Key": "refund-0002"},
    )
    assert too_much.status_code == 422
    async with own_service(settings_with_upstreams, keyring) as service:
        result = await refund_card_balance(service, uuid.UUID(order["card_id"]), SYSTEM)
    assert (result.balance, result.unrefunded) == (4000, 0)
    assert await balance_of(db, order["card_id"]) == 0
    view = (await client.get(f"{API}/{order['id']}", headers=citizen)).json()
    assert (view["state"], view["refunded_amount"]) == ("refunded", 5000)
    assert await check_ledger(db) == []


async def test_a_physical_cards_topup_waits_for_a_kiosk(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], simulators: SimulatorsProcess, db: Any
) -> None:
    await db.execute("UPDATE card.cards SET physical = true")
    done = await pay_and_notify(client, citizen, simulators.urls, "unionpay", 5000)
    order, delivery = done["order"], done["delivery"]
    await client.post(
        "/api/v1/payments/notify/unionpay", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    assert (await client.get(f"{API}/{order['id']}", headers=citizen)).json()["state"] == "awaiting_load"
    assert await balance_of(db, order["card_id"]) == 0
    card_id = uuid.UUID(order["card_id"])
    [held] = await held_topups(db, card_id)
    assert held.amount == 5000
    async with db.transaction():
        began = await begin_kiosk_load_txn(db, card_id)
        assert began is not None
        assert await begin_kiosk_load_txn(db, card_id) is None
        assert await finish_kiosk_load_txn(db, began.order_id, loaded=False)
    async with db.transaction():
        again = await begin_kiosk_load_txn(db, card_id)
        assert again is not None
        assert await finish_kiosk_load_txn(db, again.order_id, loaded=True)
        assert not await finish_kiosk_load_txn(db, again.order_id, loaded=True)
    assert (await client.get(f"{API}/{order['id']}", headers=citizen)).json()["state"] == "credited"
    # Credited only now, at the kiosk: that is when the citizen is told, once.
    inbox = (await client.get("/api/v1/messages", headers=citizen)).json()["messages"]
    [credited] = [m for m in inbox if m["kind"] == "payments.topup_credited"]
    assert "已在自助终端圈存到卡" in credited["body"]
