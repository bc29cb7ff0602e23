"""The audit chain: concurrent appends form one chain; any changed, deleted or reordered row is found."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.audit import AuditEvent, record, verify_chain
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, ZHANG, Flows, bearer


async def _append(database_url: str, count: int, concurrency: int = 10) -> None:
    pool: Any = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
    try:

        async def one(i: int) -> None:
            async with pool.acquire() as conn:
                await record(
                    conn,
                    AuditEvent(
                        action="test.append",
                        actor_kind="system",
                        target_kind="n",
                        target_id=str(i),
                        details={"i": i, "note": "并发", "tags": ["a", "b"]},
                    ),
                )

        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await pool.close()


async def test_concurrent_appends_form_one_chain(database_url: str, db: Any) -> None:
    await _append(database_url, 200)
    report = await verify_chain(db)
    assert report.ok and report.entries == 200 and report.head_seq == 200
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM identity.audit_log ORDER BY seq")]
    assert seqs == list(range(1, 201))


async def test_the_table_refuses_update_delete_and_truncate(database_url: str, db: Any) -> None:
    await _append(database_url, 3)
    for statement in (
        "UPDATE identity.audit_log SET outcome = 'failure' WHERE seq = 2",
        "DELETE FROM identity.audit_log WHERE seq = 3",
        "TRUNCATE identity.audit_log",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(statement)
    assert (await verify_chain(db)).ok


async def _tamper(db: Any, *statements: str) -> None:
    """What a DBA could do: switch the guard off, edit, switch it on again."""
    await db.execute("ALTER TABLE identity.audit_log DISABLE TRIGGER USER")
    for statement in statements:
        await db.execute(statement)
    await db.execute("ALTER TABLE identity.audit_log ENABLE TRIGGER USER")


@pytest.mark.parametrize(
    ("statements", "broken"),
    [
        (["UPDATE identity.audit_log SET details = '{\"i\": 999}' WHERE seq = 5"], 5),
        (["UPDATE identity.audit_log SET outcome = 'failure' WHERE seq = 1"], 1),
        (["UPDATE identity.audit_log SET occurred_at = occurred_at + interval '1 second' WHERE seq = 7"], 7),
        (["UPDATE identity.audit_log SET client_address = '10.0.0.1' WHERE seq = 10"], 10),
        (["DELETE FROM identity.audit_log WHERE seq = 4"], 4),
        (["DELETE FROM identity.audit_log WHERE seq = 10"], 10),  # the tail: caught by the head
        (["DELETE FROM identity.audit_log WHERE seq = 1"], 1),
        # Reorder: swap two entries' places (their seq numbers).
        (
            [
                "UPDATE identity.audit_log SET seq = -3 WHERE seq = 3",
                "UPDATE identity.audit_log SET seq = 3 WHERE seq = 6",
                "UPDATE identity.audit_log SET seq = 6 WHERE seq = -3",
            ],
            3,
        ),
        # Reorder with recomputed links is still caught: the seq is inside each hash.
        (
            [
                "UPDATE identity.audit_log SET seq = -8 WHERE seq = 8",
                "UPDATE identity.audit_log SET seq = 8 WHERE seq = 9",
                "UPDATE identity.audit_log SET seq = 9 WHERE seq = -8",
                "UPDATE identity.audit_log a SET prev_hash = b.hash FROM identity.audit_log b"
                " WHERE a.seq = 8 AND b.seq = 7",
            ],
            8,
        ),
        # An entry appended by hand, outside the chain's head.
        (
            [
                "INSERT INTO identity.audit_log"
                " (seq, occurred_at, actor_kind, action, outcome, prev_hash, hash)"
                " SELECT 11, now(), 'system', 'forged', 'success', hash, hash"
                " FROM identity.audit_log WHERE seq = 10"
            ],
            11,
        ),
    ],
)
async def test_tampering_is_detected(database_url: str, db: Any, statements: list[str], broken: int) -> None:
    await _append(database_url, 10, concurrency=1)
    assert (await verify_chain(db)).ok
    await _tamper(db, *statements)
    report = await verify_chain(db)
    assert not report.ok
    assert report.first_broken_seq == broken, report.reason


def _cli(
    repo_root: Path, database_url: str, redis_url: str, data_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        CITIZEN_ENV="test",
        CITIZEN_DATA_DIR=str(data_dir),
        CITIZEN_DATABASE_URL=database_url,
        CITIZEN_REDIS_URL=redis_url,
        CITIZEN_LOG_LEVEL="WARNING",
    )
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
async def test_done_when_scenario_is_in_the_chain_and_citizen_audit_verify_passes(
    client: AsyncTestClient[Litestar],
    flows: Flows,
    db: Any,
    database_url: str,
    repo_root: Path,
    identity_settings: Any,
    tmp_path: Path,
) -> None:
    # A new user registers, verifies real name, enables TOTP and reaches L3.
    l2 = await flows.verified(ZHANG)
    _, l3 = await flows.enable_totp(l2["token"])
    assert l3["loa"] == 3
    # Another registers a company as its legal representative... (the seed makes ZHANG the
    # company's representative, so here the L3 user does, and LI becomes the agent.)
    company = ENTERPRISES[0]
    org = await client.post(
        f"{API}/organisations",
        json={"credit_code": company.credit_code, "name": company.name, "kind": company.kind},
        headers=bearer(l3["token"]),
    )
    assert org.status_code == 201
    org_id = org.json()["id"]
    agent = await flows.verified(LI)
    appointed = await client.post(
        f"{API}/organisations/{org_id}/agents",
        json={"id_number": LI.id_number, "name": LI.name, "roles": ["payments"], "ends_on": "2099-12-31"},
        headers=bearer(l3["token"]),
    )
    assert appointed.status_code == 201
    assert (await flows.act_for(agent["token"], org_id)).status_code == 200

    actions = [r["action"] for r in await db.fetch("SELECT action FROM identity.audit_log ORDER BY seq")]
    for step in (
        "identity.person.register",
        "identity.person.verify",
        "identity.totp.enable",
        "identity.organisation.register",
        "identity.agent.appoint",
        "identity.context.switch",
    ):
        assert step in actions
    switch = await db.fetchrow(
        "SELECT * FROM identity.audit_log WHERE action = 'identity.context.switch' ORDER BY seq DESC LIMIT 1"
    )
    assert switch["actor_id"] == agent["account_id"] and switch["acting_for"] == org_id
    assert switch["client_address"] and switch["request_id"]

    redis_url = identity_settings.redis.url.reveal()
    result = _cli(repo_root, database_url, redis_url, tmp_path, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain verified" in result.stdout

    await _tamper(db, "UPDATE identity.audit_log SET outcome = 'failure' WHERE seq = 3")
    result = _cli(repo_root, database_url, redis_url, tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at entry 3" in result.stdout
