"""`citizen sms tail`, `citizen operators create`, the demo loader; no dev endpoint in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.demo import load_demo
from backend.keyring import Keyring
from backend.settings import Environment, Settings
from identity.demo import DEMO_OPERATOR
from integrations.simulators.seed import DEMO_CITIZEN
from tests.identity.conftest import API, ZHANG, Flows

pytestmark = pytest.mark.slow


def _cli(
    repo_root: Path, settings: Settings, data_dir: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    assert settings.database.url is not None and settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        CITIZEN_ENV="test",
        CITIZEN_DATA_DIR=str(data_dir),
        CITIZEN_DATABASE_URL=settings.database.url.reveal(),
        CITIZEN_REDIS_URL=settings.redis.url.reveal(),
        CITIZEN_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=repo_root,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_sms_tail_shows_the_codes(
    flows: Flows, repo_root: Path, identity_settings: Settings, tmp_path: Path
) -> None:
    code = await flows.send_code(ZHANG.mobile)
    result = _cli(repo_root, identity_settings, tmp_path, "sms", "tail", "-n", "5")
    assert result.returncode == 0, result.stderr
    assert code in result.stdout and ZHANG.mobile in result.stdout


async def test_operators_create_then_sign_in(
    client: AsyncTestClient[Any], repo_root: Path, identity_settings: Settings, tmp_path: Path, db: Any
) -> None:
    result = _cli(
        repo_root,
        identity_settings,
        tmp_path,
        "operators",
        "create",
        "--username",
        "first-admin",
        "--role",
        "security_admin",
        "--role",
        "auditor",
    )
    assert result.returncode == 0, result.stderr
    password = result.stdout.split("password (shown once): ")[1].strip()
    response = await client.post(
        f"{API}/operator-sessions", json={"username": "first-admin", "password": password}
    )
    assert response.status_code == 201
    whoami = (
        await client.get(f"{API}/session", headers={"Authorization": f"Bearer {response.json()['token']}"})
    ).json()
    assert whoami["kind"] == "operator" and sorted(whoami["operator_roles"]) == ["auditor", "security_admin"]
    again = _cli(
        repo_root,
        identity_settings,
        tmp_path,
        "operators",
        "create",
        "--username",
        "first-admin",
        "--role",
        "support",
    )
    assert again.returncode == 2, again.stdout + again.stderr
    assert (
        again.stderr.strip()
        == "citizen: operator first-admin not created: an operator named first-admin exists"
    )
    invalid = _cli(
        repo_root, identity_settings, tmp_path, "operators", "create", "--username", "X!", "--role", "support"
    )
    assert invalid.returncode == 2
    assert invalid.stderr.strip() == "citizen: operator X! not created: username: 3-64 of a-z 0-9 . _ -"
    created = await db.fetch(
        "SELECT actor_kind, target_id, details->>'username' AS username FROM identity.audit_events"
        " WHERE action = 'identity.operator.create'"
    )
    assert [(r["actor_kind"], r["username"]) for r in created] == [("system", "first-admin")]


async def test_demo_loader_is_idempotent_and_its_accounts_work(
    client: AsyncTestClient[Any],
    identity_settings: Settings,
    keyring: Keyring,
    db: Any,
    redis_client: aioredis.Redis,
) -> None:
    from backend.db import create_pool

    assert identity_settings.database.url is not None
    pool = await create_pool(identity_settings.database, identity_settings.database.url.reveal())
    try:
        first = await load_demo(pool, redis_client, identity_settings, keyring)
        second = await load_demo(pool, redis_client, identity_settings, keyring)
    finally:
        await pool.close()
    identity_lines = [line for line in first if line.startswith("identity:")]
    assert identity_lines == [line for line in second if line.startswith("identity:")]
    assert await db.fetchval("SELECT count(*) FROM identity.accounts") == 1
    assert await db.fetchval("SELECT count(*) FROM identity.organisations") == 1
    operator_line = next(line for line in identity_lines if DEMO_OPERATOR in line)
    operator_password = operator_line.split(" / ")[1].split(" ")[0]
    signed_in = await client.post(
        f"{API}/operator-sessions", json={"username": DEMO_OPERATOR, "password": operator_password}
    )
    assert signed_in.status_code == 201
    citizen_line = next(line for line in identity_lines if "citizen" in line)
    citizen_password = citizen_line.split(" / ")[1].split(",")[0]
    citizen = await client.post(
        f"{API}/sessions/password", json={"mobile": DEMO_CITIZEN.mobile, "password": citizen_password}
    )
    assert citizen.status_code == 201 and citizen.json()["loa"] == 2
    report = await client.get(
        f"{API}/organisations", headers={"Authorization": f"Bearer {citizen.json()['token']}"}
    )
    assert report.json()[0]["is_legal_representative"] is True


async def test_dev_sms_endpoint_is_absent_in_production(settings: Settings, keyring: Keyring) -> None:
    production = settings.replace(environment=Environment.PRODUCTION)
    async with AsyncTestClient(create_app(production, keyring)) as client:
        response = await client.get(f"{API}/dev/sms")
        assert response.status_code == 404
        assert (await client.get("/readyz")).status_code == 200
