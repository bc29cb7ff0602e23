"""Top-up orders under races: two channels at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess
from payments.topup.models import PayingElsewhere
from payments.topup.service import Actor
from tests.payments import test_topup
from tests.payments.test_topup import API, create, own_service

# The top-up tests' fixtures: an app on the simulators, its client, a citizen with a card.
app, client, citizen = test_topup.app, test_topup.client, test_topup.citizen
Client = AsyncTestClient[Litestar]


async def test_two_channels_at_once_one_pays_the_other_is_refused(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: Client,
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> None:
    order = (await create(client, citizen, 3000, "race-create-1")).json()
    order_id = uuid.UUID(order["id"])
    person = await db.fetchval("SELECT person_id FROM payments.topup_orders WHERE id = $1", order_id)
    actor = Actor(kind="person", id=str(person))
    async with own_service(settings_with_upstreams, keyring) as service:
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
        await db.fetchval("SELECT channel FROM payments.topup_orders WHERE id = $1", order_id)
        == paying.channel
    )
    # Over HTTP the refusal is a problem document with its own type.
    other = "alipay" if paying.channel == "wechatpay" else "wechatpay"
    answer = await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": other},
        headers={**citizen, "Idempotency-Key": "race-pay-3"},
    )
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("topup-paying-elsewhere")
    # Paying again through the same channel (a retry) is still fine.
    again = await client.post(
        f"{API}/{order['id']}/pay",
        json={"channel": paying.channel},
        headers={**citizen, "Idempotency-Key": "race-pay-4"},
    )
    assert again.status_code == 200, again.text
    denied = await db.fetchval(
        "SELECT count(*) FROM identity.audit_events "
        "WHERE action = 'payments.topup.pay' AND outcome = 'denied'"
    )
    assert denied == 2
