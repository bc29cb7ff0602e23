"""``citizen ledger check`` as a user runs it, on this test's database."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

from backend.settings import Settings
from payments.ledger import Transfer, create_transfers
from tests.payments.conftest import Chart


def _run(settings: Settings) -> subprocess.CompletedProcess[str]:
    assert settings.database.url is not None and settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env |= {
        "CITIZEN_ENV": "test",
        "CITIZEN_DATABASE_URL": settings.database.url.reveal(),
        "CITIZEN_REDIS_URL": settings.redis.url.reveal(),
        "CITIZEN_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", "ledger", "check"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


async def test_ledger_check_passes_then_names_the_first_discrepancy(
    db: Any, chart: Chart, settings: Settings
) -> None:
    transfer = Transfer(
        id=uuid.uuid4(), debit_account_id=chart.control, credit_account_id=chart.purse, amount=500
    )
    await create_transfers(db, [transfer])
    ok = _run(settings)
    assert ok.returncode == 0, ok.stderr
    assert "ledger check passed: 4 accounts, 1 transfers" in ok.stdout
    await db.execute("UPDATE payments.accounts SET debits_posted = 7 WHERE id = $1", chart.operator)
    bad = _run(settings)
    assert bad.returncode == 1
    assert "ledger check failed [account-totals]" in bad.stderr
    assert str(chart.operator) in bad.stderr
