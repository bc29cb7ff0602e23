"""An Idempotency-Key taken over after its lock timeout while its first request still ran: the
first request, once it goes on, can neither do its work under the key (its answer is refused, its
transaction rolled back), nor overwrite the retry's answer, nor delete the key the retry holds."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from payments.ledger.check import check_ledger
from payments.topup import idempotency, refunds
from payments.topup.models import CreateTopup, RefundRequest
from payments.topup.refunds import refund_topup
from payments.topup.service import SYSTEM, Actor
from tests.payments import test_topup
from tests.payments.conftest import Topups
from tests.payments.test_topup import balance_of, create, own_service
from tests.payments.test_topup_refunds import credited, refund, refund_rows

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen

Client = AsyncTestClient[Litestar]
_AGED = "UPDATE payments.idempotency_keys SET locked_at = now() - interval '100 seconds' WHERE key = $1"


async def _stalled_claim(
    db: Any, pool: Any, person: str, key: str, operation: str, request: Any, status: int
) -> idempotency.Claim:
    """A first request's claim of ``key``, then aged past the lock timeout (it stalled)."""
    first = await idempotency.claim(pool, person, key, operation, request, status=status)
    assert isinstance(first, idempotency.Claim)
    await db.execute(_AGED, key)
    return first


async def test_a_request_whose_key_was_taken_over_makes_no_refund_under_it(topups: Topups) -> None:
    t = topups
    client, citizen, db = t.client, t.citizen, t.db
    order = await credited(t, "unionpay")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders")
    request = RefundRequest(amount=1500)
    key = "fenced-refund-01"
    async with t.service() as service:
        # The first request claims the key, then stalls for longer than the lock timeout...
        first = await _stalled_claim(
            db, service.pool, str(person), key, f"refund:{order['id']}", request, 200
        )
        # ...the client's retry takes the key over and refunds.
        retry = await refund(t, order, 1500, key)
        assert retry.status_code == 200, retry.text
        assert retry.headers.get("idempotency-replayed") is None
        # The first request goes on: its refund is refused with the key, and nothing is reserved.
        with pytest.raises(idempotency.IdempotencyKeyTakenOver):
            await refund_topup(
                service, uuid.UUID(order["id"]), person_id=person, amount=1500, reason=request.reason,
                actor=SYSTEM, claim=first,
            )  # fmt: skip
        assert not await idempotency.finish(service.pool, first, b"{}")
    assert await refund_rows(db, order) == [("succeeded", 1500)]
    assert await balance_of(db, order["card_id"]) == 3500
    replay = await refund(t, order, 1500, key)
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == retry.json()  # the retry's answer, final state included
    view = (await client.get(f"{test_topup.API}/{order['id']}", headers=citizen)).json()
    assert view["refunded_amount"] == 1500
    assert await check_ledger(db) == []


async def test_a_request_whose_key_was_taken_over_makes_no_order_under_it(
    settings_with_upstreams: Settings, keyring: Keyring, client: Client, citizen: dict[str, str], db: Any
) -> None:
    await create(client, citizen, 5000, "fenced-create-00")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders LIMIT 1")
    data = CreateTopup(amount=2000)
    async with own_service(settings_with_upstreams, keyring) as service:
        first = await _stalled_claim(db, service.pool, str(person), "fenced-create-01", "create", data, 201)
        retry = await create(client, citizen, 2000, "fenced-create-01")
        assert retry.status_code == 201, retry.text
        with pytest.raises(idempotency.IdempotencyKeyTakenOver):
            await service.create(person, data, Actor(kind="person", id=str(person)), claim=first)
    assert await db.fetchval("SELECT count(*) FROM payments.topup_orders") == 2  # not a third
    replay = await create(client, citizen, 2000, "fenced-create-01")
    assert replay.json() == retry.json()


async def test_a_stale_request_answers_409_and_leaves_the_key_to_the_retry(
    topups: Topups, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the API: the retry takes the key over while the first request is reserving."""
    t = topups
    db = t.db
    settings_with_upstreams, keyring = t.settings, t.keyring
    order = await credited(t, "unionpay")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders")
    key = "fenced-refund-02"
    taken: list[idempotency.Stored | idempotency.Claim] = []
    reserve = refunds._reserve_txn

    async def stalls_then_reserves(connection: Any, *args: Any) -> None:
        # The first request stalls here; meanwhile its key ages and a retry claims it.
        other = await asyncpg.connect(database_url)
        try:
            await other.execute(_AGED, key)
        finally:
            await other.close()
        async with own_service(settings_with_upstreams, keyring) as service:
            taken.append(
                await idempotency.claim(
                    service.pool, str(person), key, f"refund:{order['id']}", RefundRequest(amount=1500),
                    status=200,
                )
            )  # fmt: skip
        await reserve(connection, *args)

    monkeypatch.setattr(refunds, "_reserve_txn", stalls_then_reserves)
    stale = await refund(t, order, 1500, key)
    monkeypatch.undo()
    assert stale.status_code == 409, stale.text
    assert stale.json()["type"].endswith("idempotency-key-in-progress")
    [retry_claim] = taken
    assert isinstance(retry_claim, idempotency.Claim)
    assert await refund_rows(db, order) == []  # the stale request's reservation was rolled back
    row = await db.fetchrow("SELECT * FROM payments.idempotency_keys WHERE key = $1", key)
    # Not released by the stale request's failure: the retry still holds it, unanswered.
    assert (row["lock_token"], row["response_status"]) == (retry_claim.token, None)
    again = await refund(t, order, 1500, key)
    assert again.status_code == 409  # the retry is still running
    # The retry, meanwhile, does the work and answers the key.
    async with own_service(settings_with_upstreams, keyring) as service:
        done = await refund_topup(
            service, uuid.UUID(order["id"]), person_id=person, amount=1500, reason="", actor=SYSTEM,
            claim=retry_claim,
        )  # fmt: skip
        assert await idempotency.finish(service.pool, retry_claim, b'{"done": true}')
    assert done.state == "succeeded"
    assert await refund_rows(db, order) == [("succeeded", 1500)]
    assert await check_ledger(db) == []


async def test_a_request_that_failed_after_its_key_was_taken_over_does_not_release_it(
    settings_with_upstreams: Settings, keyring: Keyring, client: Client, citizen: dict[str, str], db: Any
) -> None:
    await create(client, citizen, 5000, "fenced-create-10")
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders LIMIT 1")
    data = CreateTopup(amount=2000)
    async with own_service(settings_with_upstreams, keyring) as service:
        first = await _stalled_claim(db, service.pool, str(person), "fenced-create-11", "create", data, 201)
        retry = await idempotency.claim(
            service.pool, str(person), "fenced-create-11", "create", data, status=201
        )
        assert isinstance(retry, idempotency.Claim)
        assert retry.token != first.token
        await idempotency.release(service.pool, first)  # the first request failed: not its key now
        assert not await idempotency.finish(service.pool, first, b'{"first": true}')
        running = await create(client, citizen, 2000, "fenced-create-11")
        assert running.status_code == 409, running.text  # still the retry's, in progress
        assert await idempotency.finish(service.pool, retry, b'{"retry": true}')
    replay = await create(client, citizen, 2000, "fenced-create-11")
    assert replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == {"retry": True}
