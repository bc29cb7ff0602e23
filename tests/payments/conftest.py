"""Fixtures for the payments tests: a small chart of accounts on the test's own database."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess
from payments.ledger import Account, AccountCode, AccountFlags, AccountResult, TransferFlags, create_accounts
from payments.topup.service import TopupService

# Shared by the ledger tests: a fixed clock and the two-phase flags as ints.
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)


class Chart(msgspec.Struct, frozen=True):
    control: uuid.UUID  # unconstrained counter-party that funds the e-purses
    purse: uuid.UUID  # e-purse, no overdraft
    purse_overdraft: uuid.UUID  # e-purse with a 100 fen overdraft limit
    operator: uuid.UUID  # operator payable

    @property
    def all(self) -> list[uuid.UUID]:
        return [self.control, self.purse, self.purse_overdraft, self.operator]


async def make_chart(db: Any) -> Chart:
    chart = Chart(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    purse = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    results = await create_accounts(
        db,
        [
            Account(id=chart.control, code=AccountCode.CONTROL),
            Account(id=chart.purse, code=AccountCode.EPURSE, flags=purse),
            Account(id=chart.purse_overdraft, code=AccountCode.EPURSE, flags=purse, overdraft_limit=100),
            Account(id=chart.operator, code=AccountCode.OPERATOR_PAYABLE),
        ],
    )
    assert results == [AccountResult.OK] * 4
    return chart


@pytest_asyncio.fixture
async def chart(db: Any) -> Chart:
    return await make_chart(db)


@dataclass(frozen=True)
class Topups:
    """What a top-up test works with: the app's client, a citizen with a card (their headers), the
    channel simulators' URLs, the database, and a service of its own on the test's loop."""

    client: AsyncTestClient[Litestar]
    citizen: dict[str, str]
    urls: dict[str, str]
    db: Any
    settings: Settings
    keyring: Keyring

    def service(self) -> AbstractAsyncContextManager[TopupService]:
        from tests.payments.test_topup import own_service  # the top-up tests' own

        return own_service(self.settings, self.keyring)

    async def notified(self, channel: str, amount: int = 5000) -> tuple[Any, httpx.Response]:
        """A top-up paid through ``channel`` and the channel's notification delivered to the
        platform: the order, and the platform's answer to the notification."""
        from tests.payments.test_topup import pay_and_notify

        done = await pay_and_notify(self.client, self.citizen, self.urls, channel, amount)
        delivery = done["delivery"]
        answer = await self.client.post(
            f"/api/v1/payments/notify/{channel}",
            content=delivery["body"].encode(),
            headers=delivery["headers"],
        )
        return done["order"], answer

    async def view(self, order: Any) -> Any:
        """The order as the citizen sees it."""
        return (await self.client.get(f"/api/v1/payments/topups/{order['id']}", headers=self.citizen)).json()

    async def audited(self, action: str, outcome: str, target_id: str) -> int:
        """How many ``action`` events with ``outcome`` the audit log holds on ``target_id``."""
        count = await self.db.fetchval(
            "SELECT count(*) FROM identity.audit_events "
            "WHERE action = $1 AND outcome = $2 AND target_id = $3",
            action,
            outcome,
            target_id,
        )
        assert isinstance(count, int)
        return count


@pytest.fixture
def topups(
    settings_with_upstreams: Settings,
    keyring: Keyring,
    client: AsyncTestClient[Litestar],
    citizen: dict[str, str],
    simulators: SimulatorsProcess,
    db: Any,
) -> Topups:
    """The top-up modules' ``client`` and ``citizen`` (tests/payments/test_topup.py) with the rest."""
    return Topups(client, citizen, simulators.urls, db, settings_with_upstreams, keyring)
