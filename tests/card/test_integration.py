"""Card joined to its neighbours over HTTP: automatic issuance with upstream applications (the ID
number read through identity), inbox messages on lifecycle changes, the balance refunded on close."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db import create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.lifecycle.aftercare import run_due_refunds
from card.lifecycle.views import BalanceRefund
from card.refunds import payments_refunder
from card.summary import card_summary
from card.wiring import build_card_services
from identity.checks import mask_resident_id
from integrations.simulators.process import SimulatorsProcess
from integrations.simulators.seed import PEOPLE
from payments.cli import channel_connectors
from payments.demo import platform_account_id
from payments.ledger.check import check_ledger
from payments.posting import LoadPosting, PurchasePosting, open_operator, post_loads, post_purchases
from payments.topup.service import TopupService
from tests.identity.conftest import Flows, bearer
from tests.payments.channel_helpers import channel_pay, channel_reset, notifications_of

API = "/api/v1/cards"
ZHANG = PEOPLE[0]


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
    return bearer((await Flows(client).verified(ZHANG))["token"])


async def _inbox(client: AsyncTestClient[Litestar], headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/messages", headers=headers)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_my_card_is_issued_on_first_look_with_its_upstream_applications(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], db: Any
) -> None:
    looks = await asyncio.gather(*(client.get(f"{API}/me", headers=citizen) for _ in range(3)))
    assert {r.status_code for r in looks} == {200}, [r.text for r in looks]
    assert len({r.json()["id"] for r in looks}) == 1  # idempotent, also when concurrent
    card = looks[0].json()
    assert await db.fetchval("SELECT count(*) FROM card.cards") == 1
    apps = {a["type"]: a for a in card["applications"]}
    assert {t: a["status"] for t, a in apps.items()} == {
        "transit_epurse": "active",
        "social_security": "active",
        "health": "active",
    }
    # From the simulators, by the ID number identity holds for this person.
    assert ZHANG.social_security_number is not None
    masked = mask_resident_id(ZHANG.social_security_number)  # the holder sees their own number masked
    assert apps["social_security"]["attributes"]["social_security_number"] == masked
    assert apps["social_security"]["attributes"]["insurance_status"] == "contributing"
    assert apps["health"]["attributes"]["health_card_id"] == ZHANG.health_card_id
    assert apps["health"]["attributes"]["health_record_link"].endswith(f"/v1/records/{ZHANG.health_card_id}")
    again = await client.get(f"{API}/me", headers=citizen)
    assert again.json()["id"] == card["id"]
    assert (await client.post(API, headers=citizen)).status_code == 409  # applying again: card-exists
    refreshed = await client.post(f"{API}/me/applications/refresh", headers=citizen)
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["applications"] == card["applications"]

    # A closed card is shown as it is, not silently replaced by a new one.
    assert (await client.post(f"{API}/me/close", headers=citizen)).status_code == 200
    closed = await client.get(f"{API}/me", headers=citizen)
    assert (closed.json()["id"], closed.json()["status"]) == (card["id"], "closed")


async def test_lifecycle_changes_reach_the_holders_inbox(
    client: AsyncTestClient[Litestar], citizen: dict[str, str]
) -> None:
    card = (await client.post(API, headers=citizen)).json()
    assert await _inbox(client, citizen) == []
    assert (await client.post(f"{API}/me/freeze", headers=citizen)).status_code == 200
    [frozen] = await _inbox(client, citizen)
    assert frozen["kind"] == "card.frozen"
    assert frozen["title"] == "市民卡已冻结"
    assert card["card_number"][-4:] in frozen["body"]
    assert frozen["data"]["card_id"] == card["id"]
    assert frozen["read_at"] is None
    await client.post(f"{API}/me/freeze", headers=citizen)  # idempotent: no second message
    await client.post(f"{API}/me/unfreeze", headers=citizen)
    await client.post(f"{API}/me/loss", headers=citizen)
    await client.post(f"{API}/me/loss", headers=citizen)
    kinds = [m["kind"] for m in await _inbox(client, citizen)]
    assert kinds == ["card.lost", "card.unfrozen", "card.frozen"]  # newest first
    unread = (await client.get("/api/v1/messages", headers=citizen)).json()["unread"]
    assert unread == 3


async def _pay_topup(
    client: AsyncTestClient[Litestar], headers: dict[str, str], urls: dict[str, str], amount: int
) -> dict[str, Any]:
    topups = "/api/v1/payments/topups"
    created = await client.post(
        topups, json={"amount": amount}, headers={**headers, "Idempotency-Key": f"c-{uuid.uuid4()}"}
    )
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    paying = await client.post(
        f"{topups}/{order['id']}/pay",
        json={"channel": "alipay"},
        headers={**headers, "Idempotency-Key": f"p-{order['id']}"},
    )
    assert paying.status_code == 200, paying.text
    async with httpx.AsyncClient() as control:
        await channel_pay(control, urls["alipay"], order["order_no"])
        [delivery] = await notifications_of(control, urls["alipay"], order["order_no"])
    notified = await client.post(
        "/api/v1/payments/notify/alipay", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    assert notified.status_code in (200, 204), notified.text
    state = (await client.get(f"{topups}/{order['id']}", headers=headers)).json()["state"]
    assert state == "credited"
    return order


@pytest_asyncio.fixture
async def due_refunds(
    settings_with_upstreams: Settings, keyring: Keyring
) -> AsyncIterator[Callable[[dt.datetime], Awaitable[list[tuple[uuid.UUID, BalanceRefund]]]]]:
    """What ``citizen card settle`` runs (its own pool and channel connectors, as the CLI has)."""
    settings = settings_with_upstreams
    assert settings.database.url is not None
    pool = await create_pool(settings.database, settings.database.url.reveal())
    services = await build_card_services(pool, settings, keyring)
    section = settings.payments
    try:
        async with channel_connectors(settings, keyring) as connectors:
            topups = TopupService(pool, section, connectors, section.notify_base_url or settings.public_url)

            async def run(now: dt.datetime) -> list[tuple[uuid.UUID, BalanceRefund]]:
                return await run_due_refunds(services.cards, payments_refunder(topups), now=now)

            yield run
    finally:
        await pool.close()


async def test_closing_refunds_the_balance_after_the_window_less_taps_uploaded_meanwhile(
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
    due_refunds: Callable[[dt.datetime], Awaitable[list[tuple[uuid.UUID, BalanceRefund]]]],
) -> None:
    card = (await client.post(API, headers=citizen)).json()
    await _pay_topup(client, citizen, simulators.urls, 5000)
    # 7 yuan loaded in cash at a kiosk: no channel to give it back through.
    [cash] = await post_loads(
        db,
        [
            LoadPosting(
                card_id=card["id"],
                counter=1,
                amount=700,
                # Not the top-ups' holding account: that one gives out only paid top-ups.
                source_account_id=platform_account_id("control"),
                occurred_at=dt.datetime.now(dt.UTC),
            )
        ],
    )
    assert cash.ok
    summary = await card_summary(db, uuid.UUID(card["id"]))  # not the holder: nothing
    assert summary is None
    [holder] = await db.fetch("SELECT holder_id FROM card.cards")
    summary = await card_summary(db, holder["holder_id"])
    assert summary is not None and (summary.balance, summary.status) == (5700, "active")

    closed = await client.post(f"{API}/me/close", headers=citizen)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["balance_refund"], body["refund"]) == ("closed", "scheduled", None)
    assert body["epurse"]["balance"] == 5700  # nothing refunded while readers may still upload taps
    due = dt.datetime.fromisoformat(body["refund_due_at"])
    closed_at = await db.fetchval("SELECT status_changed_at FROM card.cards")
    assert due == closed_at + dt.timedelta(days=3)  # the settlement window (card settings)
    assert await due_refunds(due - dt.timedelta(minutes=1)) == []  # not due yet

    # A ride taken offline before the close reaches the platform from a bus reader meanwhile.
    await open_operator(db, "bus-1")
    [tap] = await post_purchases(
        db,
        [PurchasePosting(card_id=card["id"], counter=0, amount=300, operator="bus-1", occurred_at=closed_at)],
    )
    assert tap.ok

    [(card_id, refund)] = await due_refunds(due + dt.timedelta(hours=1))
    assert card_id == uuid.UUID(card["id"])
    assert (refund.balance, refund.refunded, refund.unrefunded) == (5400, 5000, 400)
    assert [(r.amount, r.state) for r in refund.refunds] == [(5000, "succeeded")]
    assert refund.error is None
    assert await due_refunds(due + dt.timedelta(days=30)) == []  # once only
    view = (await client.get(f"{API}/me", headers=citizen)).json()
    assert view["balance_refund"] == "done"
    assert view["refund"] == {
        "balance": 5400,
        "refunded": 5000,
        "unrefunded": 400,
        "refunds": [],
        "error": None,
    }
    assert view["epurse"]["balance"] == 400  # what the card desk pays out
    summary = await card_summary(db, holder["holder_id"])
    assert summary is not None and (summary.balance, summary.status, summary.live) == (400, "closed", False)
    assert set(summary.applications.values()) == {"closed"}
    events = await db.fetch(
        "SELECT action, details FROM card.lifecycle_events WHERE card_id = $1 ORDER BY id",
        uuid.UUID(card["id"]),
    )
    assert [e["action"] for e in events] == ["issue", "close", "refund_balance"]
    assert json.loads(events[-1]["details"])["unrefunded"] == 400  # a raw connection: jsonb as text
    # Newest first: the close, after the top-up's "credited" message (payments).
    assert [m["kind"] for m in await _inbox(client, citizen)] == ["card.closed", "payments.topup_credited"]
    assert await check_ledger(db) == []


async def test_closing_an_empty_card_refunds_nothing(
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    db: Any,
    due_refunds: Callable[[dt.datetime], Awaitable[list[tuple[uuid.UUID, BalanceRefund]]]],
) -> None:
    await client.post(API, headers=citizen)
    body = (await client.post(f"{API}/me/close", headers=citizen)).json()
    assert body["balance_refund"] == "scheduled"
    [(_, refund)] = await due_refunds(dt.datetime.fromisoformat(body["refund_due_at"]))
    assert (refund.balance, refund.refunded, refund.unrefunded, refund.refunds) == (0, 0, 0, [])
    actions = [r["action"] for r in await db.fetch("SELECT action FROM card.lifecycle_events ORDER BY id")]
    assert actions == ["issue", "close"]
