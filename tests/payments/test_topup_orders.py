"""Top-up orders under races and interruptions: two channels at once, Idempotency-Keys left
locked or kept too long, and how the channels' notifications are audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from integrations.credentials import dev_credential
from integrations.simulators.process import SimulatorsProcess
from payments.channels.crypto import channel_secrets, rsa_sign, sorted_query
from payments.topup import idempotency
from payments.topup.models import CreateTopup, PayingElsewhere
from payments.topup.service import Actor
from tests.payments import test_topup
from tests.payments.conftest import Topups
from tests.payments.test_topup import API, create

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen
Client = AsyncTestClient[Litestar]


async def test_two_channels_at_once_one_pays_the_other_is_refused(topups: Topups) -> None:
    t = topups
    order = (await create(t.client, t.citizen, 3000, "race-create-1")).json()
    order_id = uuid.UUID(order["id"])
    person = await t.db.fetchval("SELECT person_id FROM payments.topup_orders WHERE id = $1", order_id)
    actor = Actor(kind="person", id=str(person))
    async with t.service() as service:
        results = await asyncio.gather(
            service.pay(person, order_id, "alipay", actor),
            service.pay(person, order_id, "wechatpay", actor),
            return_exceptions=True,
        )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1, results
    assert isinstance(refused[0], PayingElsewhere)
    [paying] = [r for r in results if not isinstance(r, BaseException)]
    assert (
        await t.db.fetchval("SELECT channel FROM payments.topup_orders WHERE id = $1", order_id)
        == paying.channel
    )
    # Over HTTP the refusal is a problem document with its own type.
    other = "alipay" if paying.channel == "wechatpay" else "wechatpay"
    answer = await t.client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": other},
        headers={**t.citizen, "Idempotency-Key": "race-pay-3"},
    )
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("topup-paying-elsewhere")
    # Paying again through the same channel (a retry) is still fine.
    again = await t.client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": paying.channel},
        headers={**t.citizen, "Idempotency-Key": "race-pay-4"},
    )
    assert again.status_code == 200, again.text
    denied = await t.db.fetchval(
        "SELECT count(*) FROM identity.audit_events "
        "WHERE action = 'payments.topup.pay' AND outcome = 'denied'"
    )
    assert denied == 2


async def key_row(db: Any, key: str) -> Any:
    return await db.fetchrow("SELECT * FROM payments.idempotency_keys WHERE key = $1", key)


async def test_a_key_left_locked_by_an_interrupted_request_is_taken_over_after_90_seconds(
    client: Client, citizen: dict[str, str], db: Any
) -> None:
    await create(client, citizen, 5000, "key-000001")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders LIMIT 1")
    digest = idempotency.request_hash("create", CreateTopup(amount=5000))
    for key, locked in (("key-crashed", 91), ("key-running", 30)):
        await db.execute(
            "INSERT INTO payments.idempotency_keys (scope, key, operation, request_hash, locked_at) "
            "VALUES ($1, $2, 'create', $3, now() - make_interval(secs => $4))",
            str(person),
            key,
            digest,
            locked,
        )
    running = await create(client, citizen, 5000, "key-running")
    assert running.status_code == 409  # may still be running: wait
    taken = await create(client, citizen, 5000, "key-crashed")
    assert taken.status_code == 201, taken.text
    replay = await create(client, citizen, 5000, "key-crashed")
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == taken.json()
    assert await db.fetchval("SELECT count(*) FROM payments.topup_orders") == 2


async def test_a_created_order_answers_its_key_even_when_the_request_never_finished(topups: Topups) -> None:
    t = topups
    await create(t.client, t.citizen, 5000, "key-000001")
    person = await t.db.fetchval("SELECT person_id FROM payments.topup_orders LIMIT 1")
    data = CreateTopup(amount=2000)
    async with t.service() as service:
        claim = await idempotency.claim(
            service.pool, str(person), "key-lost-answer", "create", data, status=201
        )
        assert isinstance(claim, idempotency.Claim)
        made = await service.create(person, data, Actor(kind="person", id=str(person)), claim=claim)
        # ... and the process stops here, before finishing the key.
    await t.db.execute("UPDATE payments.idempotency_keys SET locked_at = now() - interval '1 hour'")
    retry = await create(t.client, t.citizen, 2000, "key-lost-answer")
    assert retry.status_code == 201
    assert retry.headers["idempotency-replayed"] == "true"
    assert retry.json()["id"] == str(made.id)
    assert await t.db.fetchval("SELECT count(*) FROM payments.topup_orders") == 2  # not a third


async def test_the_sweep_forgets_keys_after_a_day(topups: Topups) -> None:
    t = topups
    await create(t.client, t.citizen, 5000, "key-yesterday")
    await create(t.client, t.citizen, 5000, "key-today-01")
    await t.db.execute(
        "UPDATE payments.idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE key = 'key-yesterday'"
    )
    async with t.service() as service:
        counts = await service.sweep()
    assert counts["keys_pruned"] == 1
    assert await key_row(t.db, "key-yesterday") is None
    assert await key_row(t.db, "key-today-01") is not None


async def test_verified_news_that_an_order_closed_is_audited_as_accepted(
    client: Client, citizen: dict[str, str], simulators: SimulatorsProcess, db: Any, keyring: Keyring
) -> None:
    order = (await create(client, citizen, 5000, "closed-create-1")).json()
    paying = await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": "alipay"},
        headers={**citizen, "Idempotency-Key": "closed-pay-1"},
    )
    assert paying.status_code == 200, paying.text
    secrets = channel_secrets(dev_credential(keyring.get("simulator"), "alipay"))
    fields = {
        "app_id": secrets.merchant_id, "out_trade_no": order["order_no"], "trade_no": "AP1",
        "total_amount": "50.00", "trade_status": "TRADE_CLOSED", "notify_id": uuid.uuid4().hex,
        "notify_time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip
    fields["sign"] = rsa_sign(secrets.channel_key, sorted_query(fields, exclude=("sign", "sign_type")))
    fields["sign_type"] = "RSA2"
    answer = await client.post(
        "/api/v1/payments/notify/alipay",
        content=str(httpx.QueryParams(fields)).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text
    assert (await client.get(f"{API}/{order['id']}", headers=citizen)).json()["state"] == "closed"
    [event] = await db.fetch(
        "SELECT outcome, details FROM identity.audit_events WHERE action = 'payments.topup.notification'"
    )
    assert event["outcome"] == "success"
