"""``citizen ledger check`` as a user runs it, on this test's database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from backend.keyring import Keyring
from backend.settings import Settings
from integrations.simulators.process import SimulatorsProcess, upstream_variables
from payments.clearing.files import verify_file
from payments.demo import PLATFORM_ACCOUNTS, platform_account, platform_account_id
from payments.fares import service_day
from payments.ledger import Transfer, create_accounts, create_transfers
from payments.posting import PurchasePosting, epurse_account_id, open_epurse, open_operator, post_purchases
from tests.payments.conftest import Chart


async def ensure_platform_accounts_on(db: Any) -> None:
    await create_accounts(db, [platform_account(n) for n in PLATFORM_ACCOUNTS])


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


def _citizen(
    settings: Settings, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert settings.database.url is not None and settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env |= {
        "CITIZEN_ENV": "test",
        "CITIZEN_DATA_DIR": str(settings.data_dir),
        "CITIZEN_DATABASE_URL": settings.database.url.reveal(),
        "CITIZEN_REDIS_URL": settings.redis.url.reveal(),
        "CITIZEN_LOG_LEVEL": "WARNING",
    } | (extra or {})
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], capture_output=True, text=True, env=env, check=False
    )


async def test_settle_writes_signed_files_shows_progress_and_is_safe_to_rerun(
    db: Any, settings: Settings, tmp_path: Path
) -> None:
    await ensure_platform_accounts_on(db)
    await open_epurse(db, "c1")
    await create_transfers(
        db,
        [
            Transfer(
                id=uuid.uuid4(),
                debit_account_id=platform_account_id("control"),
                credit_account_id=epurse_account_id("c1"),
                amount=5000,
            )
        ],
    )
    await open_operator(db, "metro")
    now = dt.datetime.now(dt.UTC)
    postings = [
        PurchasePosting(card_id="c1", counter=n, amount=400, operator="metro", occurred_at=now)
        for n in (1, 2)
    ]
    assert all(r.ok for r in await post_purchases(db, postings))
    day = service_day(now).isoformat()
    first = _citizen(
        settings, "settle", "--date", day, "--out", str(tmp_path), extra={"SUDO_USER": "clerk-7"}
    )
    assert first.returncode == 0, first.stderr
    # audited under the person behind sudo, with the operator's net (fen)
    event = await db.fetchrow(
        "SELECT actor_kind, actor_id, details->'net' AS net FROM identity.audit_events "
        "WHERE action = 'payments.settlement.run'"
    )
    assert (event["actor_kind"], event["actor_id"], event["net"]) == (
        "operator",
        "os:clerk-7",
        '["metro=796"]',
    )
    assert f"settle {day} [####################] 6/6 done" in first.stderr
    assert "metro: 2 taps (0 late, 0 concession), gross 8.00, rebates 0.00 (0 transfers), fees 0.04, " in (
        first.stdout
    )
    assert "net payable 7.96" in first.stdout
    assert "2 ledger transfers made" in first.stdout
    file = tmp_path / day / f"settlement-metro-{day.replace('-', '')}.csv"
    keyring = Keyring.load(settings)
    assert verify_file(file.read_bytes(), keyring.get("settlement")).net == 796
    again = _citizen(settings, "settle", "--date", day, "--out", str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "re-run: the ledger already held every transfer, nothing moved" in again.stdout
    assert _run(settings).returncode == 0
    refused = _citizen(settings, "settle", "--date", "2020-01-01")
    assert refused.returncode == 1 and "settle the days in order" in refused.stdout


async def test_reconcile_and_sweep_commands(
    db: Any, settings: Settings, simulators: SimulatorsProcess
) -> None:
    urls = upstream_variables(simulators.urls)
    day = service_day(dt.datetime.now(dt.UTC)).isoformat()
    done = _citizen(settings, "reconcile", "--date", day, extra=urls | {"SUDO_USER": "clerk-7"})
    assert done.returncode == 0, done.stderr + done.stdout
    for channel in ("alipay", "unionpay", "wechatpay"):
        assert f"{channel}: " in done.stdout and " matched, " in done.stdout
    audited = await db.fetch(
        "SELECT actor_id, target_id FROM identity.audit_events WHERE action = 'payments.reconciliation.run' "
        "ORDER BY target_id"
    )
    assert [(e["actor_id"], e["target_id"]) for e in audited] == [
        ("os:clerk-7", f"{channel}:{day}") for channel in ("alipay", "unionpay", "wechatpay")
    ]
    nothing = _citizen(settings, "reconcile", "--date", day)
    assert nothing.returncode == 1 and "no payment channel is configured" in nothing.stdout
    sweep = _citizen(settings, "payments", "sweep", extra=urls)
    assert sweep.returncode == 0, sweep.stderr
    assert sweep.stdout.startswith("sweep: queried 0, credited 0, closed 0")
