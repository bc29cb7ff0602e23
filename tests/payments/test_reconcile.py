"""Reconciliation finds exactly the mismatches the channel simulator's fault mode plants."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess
from payments.clearing.reconcile import reconcile_channel
from tests.payments.channel_helpers import channel_faults
from tests.payments.test_topup import app, citizen, client, own_service, pay_and_notify  # noqa: F401

CHINA = dt.timezone(dt.timedelta(hours=8))


async def test_planted_mismatches_and_nothing_else(
    client: AsyncTestClient[Litestar],  # noqa: F811
    citizen: dict[str, str],  # noqa: F811
    simulators: SimulatorsProcess,
    settings_with_upstreams: Settings,
    keyring: Keyring,
    db: Any,
) -> None:
    for _ in range(4):
        done = await pay_and_notify(client, citizen, simulators.urls, "alipay", 5000)
        delivery = done["delivery"]
        response = await client.post(
            "/api/v1/payments/notify/alipay", content=delivery["body"].encode(), headers=delivery["headers"]
        )
        assert response.status_code == 200
    async with httpx.AsyncClient() as control:
        await channel_faults(control, simulators.urls["alipay"], drop=1, extra=1, amount=1)
    today = dt.datetime.now(CHINA).date()
    async with own_service(settings_with_upstreams, keyring) as service:
        result = await reconcile_channel(service.pool, service.connectors["alipay"], today)
        again = await reconcile_channel(service.pool, service.connectors["alipay"], today)
        clean = await reconcile_channel(service.pool, service.connectors["unionpay"], today)
    assert result.matched == 2
    assert (result.count("platform_only"), result.count("channel_only"), result.count("amount_mismatch")) == (
        1,
        1,
        1,
    )
    [mismatch] = [i for i in result.items if i.kind == "amount_mismatch"]
    assert (mismatch.platform_amount, mismatch.channel_amount) == (5000, 5100)
    assert again.items == result.items
    assert (clean.matched, clean.items) == (0, [])
    assert await db.fetchval("SELECT count(*) FROM payments.suspense_items WHERE state = 'open'") == 3
    assert uuid.UUID(str(await db.fetchval("SELECT id FROM payments.suspense_items LIMIT 1")))
