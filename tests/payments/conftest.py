"""Fixtures for the payments tests: a small chart of accounts on the test's own database."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest_asyncio

from payments.ledger import Account, AccountCode, AccountFlags, AccountResult, TransferFlags, create_accounts

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
