"""The app's lifespan runs the top-up sweep periodically (``CITIZEN_PAYMENTS_SWEEP_INTERVAL``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings


async def test_the_periodic_sweep_closes_an_expired_order(
    db: Any, settings: Settings, keyring: Keyring
) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    order_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO payments.topup_orders (id, order_no, person_id, card_id, epurse_account_id, physical, "
        "amount, channel, state, created_at, updated_at, expires_at) "
        "VALUES ($1, 'TUSWEEP1', $2, $3, $4, false, 5000, NULL, 'created', $5, $5, $5)",
        order_id,
        uuid.uuid4(),
        uuid.uuid4(),
        uuid.uuid4(),
        past,
    )
    quick = settings.replace(payments=msgspec.structs.replace(settings.payments, sweep_interval=1))
    async with AsyncTestClient(create_app(quick, keyring)):
        for _ in range(300):  # the job's own pace: wait for its first passes, not for a time
            if (
                await db.fetchval("SELECT state FROM payments.topup_orders WHERE id = $1", order_id)
                == "closed"
            ):
                break
            await asyncio.sleep(0.1)
    assert await db.fetchval("SELECT state FROM payments.topup_orders WHERE id = $1", order_id) == "closed"
    cause = await db.fetchval(
        "SELECT cause FROM payments.topup_events WHERE order_id = $1 ORDER BY id DESC", order_id
    )
    assert cause == "expired"
