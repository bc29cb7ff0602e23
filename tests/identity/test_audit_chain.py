"""The audit chain: concurrent appends form one chain; any changed, deleted or reordered row is found.

Appends record events without locking anything; sealers chain the committed ones. The tests run
sealers concurrently with appends, with transactions that roll back and transactions that commit
late, and check that every committed event is chained exactly once, in one gap-free chain.
"""

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

from identity.audit import AuditEvent, SealResult, entries_for, record, seal, seal_all, verify_chain
from integrations.simulators.seed import ENTERPRISES
from tests.identity.conftest import API, LI, ZHANG, Flows, bearer


async def _append(database_url: str, count: int, concurrency: int = 10) -> None:
    """``count`` events from ``concurrency`` connections, then everything sealed."""
    pool: Any = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
    try:

        async def one(i: int) -> None:
            async with pool.acquire() as conn:
                await record(conn, _event(i))

        await asyncio.gather(*(one(i) for i in range(count)))
        async with pool.acquire() as conn:
            await seal_all(conn)
    finally:
        await pool.close()


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        action="test.append",
        actor_kind="system",
        target_kind="n",
        target_id=str(i),
        details={"i": i, "note": "并发", "tags": ["a", "b"]},
    )


async def _chained_targets(db: Any) -> list[str]:
    return [r["target_id"] for r in await db.fetch("SELECT target_id FROM identity.audit_log ORDER BY seq")]


async def test_concurrent_appends_form_one_chain(database_url: str, db: Any) -> None:
    await _append(database_url, 200)
    report = await verify_chain(db)
    assert report.ok and report.entries == 200 and report.head_seq == 200 and report.unsealed == 0
    seqs = [r["seq"] for r in await db.fetch("SELECT seq FROM identity.audit_log ORDER BY seq")]
    assert seqs == list(range(1, 201))
    assert sorted(await _chained_targets(db), key=int) == [str(i) for i in range(200)]


async def test_concurrent_appends_rollbacks_and_sealers_chain_each_committed_event_once(
    database_url: str, db: Any
) -> None:
    """Appends in transactions (a third of them rolled back, leaving gaps in the pending ids), with
    four sealers running all along: the chain ends up holding exactly the committed events, once."""
    pool: Any = await asyncpg.create_pool(database_url, min_size=16, max_size=16)
    committed: set[str] = set()
    appending = True

    async def writer(lane: int) -> None:
        for k in range(40):
            i = lane * 1000 + k
            async with pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await record(conn, _event(i))
                await asyncio.sleep(0)
                if i % 3 == 0:
                    await tx.rollback()
                else:
                    await tx.commit()
                    committed.add(str(i))

    async def sealer() -> None:
        async with pool.acquire() as conn:
            while appending:
                await seal(conn, 7)  # small batches: many seals interleave with the appends
                await asyncio.sleep(0)

    try:
        sealers = [asyncio.create_task(sealer()) for _ in range(4)]
        await asyncio.gather(*(writer(lane) for lane in range(10)))
        appending = False
        await asyncio.gather(*sealers)
        async with pool.acquire() as conn:
            await seal_all(conn)
    finally:
        await pool.close()
    report = await verify_chain(db)
    assert report.ok, report.reason
    assert report.unsealed == 0 and report.entries == report.head_seq == len(committed)
    targets = await _chained_targets(db)
    assert len(targets) == len(set(targets)) and set(targets) == committed


async def test_an_event_committed_late_is_chained_after_those_sealed_meanwhile(
    database_url: str, db: Any
) -> None:
    """A transaction that recorded first but commits last: nothing waits for it, its event is not
    sealed while uncommitted, and it joins the chain after the events sealed meanwhile."""
    late: Any = await asyncpg.connect(database_url)
    try:
        tx = late.transaction()
        await tx.start()
        await record(late, _event(0))  # the lowest pending id
        await asyncio.wait_for(_append(database_url, 5), 30)  # not blocked by the open transaction
        report = await verify_chain(db)
        assert report.ok and report.entries == 5 and report.unsealed == 0  # invisible, uncommitted
        await tx.commit()
    finally:
        await late.close()
    assert (await verify_chain(db)).unsealed == 1
    assert await seal_all(db) == 1
    report = await verify_chain(db)
    assert report.ok and report.entries == 6 and report.unsealed == 0
    assert (await _chained_targets(db))[-1] == "0"


async def test_a_sealer_that_finds_the_lock_taken_returns_at_once(database_url: str, db: Any) -> None:
    await record(db, _event(1))
    holder: Any = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            assert (await seal(holder, 10)) == SealResult(1, False)
            await record(db, _event(2))
            assert (await seal(db, 10)).busy  # the holder's transaction still holds the lock
    finally:
        await holder.close()
    assert await seal(db, 10) == SealResult(1, False)
    assert (await verify_chain(db)).entries == 2


async def test_entries_for_shows_sealed_and_pending_events_newest_first(db: Any) -> None:
    for i in range(3):
        await record(db, AuditEvent(action=f"test.{i}", actor_kind="system", target_id="subject"))
    await seal_all(db)
    await record(db, AuditEvent(action="test.3", actor_kind="system", target_id="subject"))
    entries = await entries_for(db, "subject")
    assert [e.action for e in entries] == ["test.3", "test.2", "test.1", "test.0"]
    assert entries[0].seq is None and entries[0].pending_id is not None and entries[0].hash is None
    assert [e.seq for e in entries[1:]] == [3, 2, 1] and all(e.hash for e in entries[1:])
    assert [e.action for e in await entries_for(db, "subject", limit=2)] == ["test.3", "test.2"]
    views = await db.fetch("SELECT action, sealed FROM identity.audit_events WHERE target_id = 'subject'")
    assert sorted((v["action"], v["sealed"]) for v in views) == [
        ("test.0", True),
        ("test.1", True),
        ("test.2", True),
        ("test.3", False),
    ]


async def test_pending_events_are_append_only_and_checked_against_their_digest(db: Any) -> None:
    for i in range(3):
        await record(db, _event(i))
    for statement in (
        "UPDATE identity.audit_pending SET outcome = 'failure'",
        "DELETE FROM identity.audit_pending",
        "TRUNCATE identity.audit_pending",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.execute(statement)
    report = await verify_chain(db)
    assert report.ok and report.unsealed == 3 and report.entries == 0
    # Edited before sealing: found while pending, and found in the chain once sealed.
    second = await db.fetchval("SELECT min(id) + 1 FROM identity.audit_pending")
    await db.execute("ALTER TABLE identity.audit_pending DISABLE TRIGGER USER")
    await db.execute(f"UPDATE identity.audit_pending SET outcome = 'failure' WHERE id = {second}")
    await db.execute("ALTER TABLE identity.audit_pending ENABLE TRIGGER USER")
    report = await verify_chain(db)
    assert not report.ok and report.first_broken_pending_id == second
    await seal_all(db)
    report = await verify_chain(db)
    assert not report.ok and report.first_broken_seq == 2


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
    accepted = await client.post(
        f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(agent["token"])
    )
    assert accepted.status_code == 200
    assert (await flows.act_for(agent["token"], org_id)).status_code == 200

    redis_url = identity_settings.redis.url.reveal()
    result = _cli(repo_root, database_url, redis_url, tmp_path, "audit", "seal")
    assert result.returncode == 0 and result.stdout.startswith("sealed "), result.stdout + result.stderr
    actions = [r["action"] for r in await db.fetch("SELECT action FROM identity.audit_log ORDER BY seq")]
    for step in (
        "identity.person.register",
        "identity.person.verify",
        "identity.totp.enable",
        "identity.organisation.register",
        "identity.agent.invite",
        "identity.agent.accept",
        "identity.context.switch",
    ):
        assert step in actions
    switch = await db.fetchrow(
        "SELECT * FROM identity.audit_log WHERE action = 'identity.context.switch' ORDER BY seq DESC LIMIT 1"
    )
    assert switch["actor_id"] == agent["account_id"] and switch["acting_for"] == org_id
    assert switch["client_address"] and switch["request_id"]

    result = _cli(repo_root, database_url, redis_url, tmp_path, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit chain verified" in result.stdout

    await _tamper(db, "UPDATE identity.audit_log SET outcome = 'failure' WHERE seq = 3")
    result = _cli(repo_root, database_url, redis_url, tmp_path, "audit", "verify")
    assert result.returncode == 1
    assert "BROKEN at entry 3" in result.stdout
