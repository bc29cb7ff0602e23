"""The terminal administration API: operators only, by role, every action in the audit log; disable and
re-key end the terminal's session on a running gateway."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from card.terminal.messages import Heartbeat, HeartbeatResponse
from card.terminal.spec import ResultCode
from identity.audit import entries_for, verify_chain
from mock_terminals.link import LinkError, TerminalLink
from tests.identity.conftest import bearer, operator_headers
from tests.terminal.conftest import Rig

API = "/api/v1/admin/terminals"


async def _operator(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, role: str
) -> dict[str, str]:
    return await operator_headers(client, settings, db, role, prefix="term")


_REGISTER = {"id": "BUS-A1", "operator": "bus-co", "kind": "bus", "line": "B1"}


async def test_no_principal_no_access(client: AsyncTestClient[Litestar], db: Any) -> None:
    calls = [
        ("POST", API, _REGISTER),
        ("GET", API, None),
        ("POST", f"{API}/BUS-A1/disable", None),
        ("POST", f"{API}/BUS-A1/enable", None),
        ("POST", f"{API}/BUS-A1/rekey", None),
        ("GET", f"{API}/suspense", None),
        ("POST", f"{API}/test-fleet", {"cards": 1, "balance": 0, "transport_public_key": "00"}),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body)
        assert response.status_code == 401, (method, url, response.status_code)
        forged = await client.request(method, url, json=body, headers=bearer("not-a-session"))
        assert forged.status_code == 401, (method, url, forged.status_code)
    assert await db.fetchval("SELECT count(*) FROM card.terminals") == 0


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        ("auditor", {"list", "suspense"}),
        ("support", {"list", "suspense", "disable", "enable"}),
        ("security_admin", {"list", "suspense", "disable", "enable", "register", "rekey"}),
    ],
)
async def test_roles(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, role: str, allowed: set[str]
) -> None:
    admin = await _operator(client, settings, db, "security_admin")
    assert (await client.post(API, json=_REGISTER, headers=admin)).status_code == 201
    caller = admin if role == "security_admin" else await _operator(client, settings, db, role)
    calls = {
        "list": ("GET", API, None, 200),
        "suspense": ("GET", f"{API}/suspense", None, 200),
        "disable": ("POST", f"{API}/BUS-A1/disable", None, 204),
        "enable": ("POST", f"{API}/BUS-A1/enable", None, 204),
        "register": ("POST", API, {**_REGISTER, "id": "BUS-A2"}, 201),
        "rekey": ("POST", f"{API}/BUS-A1/rekey", None, 200),
    }
    for name, (method, url, body, ok) in calls.items():
        response = await client.request(method, url, json=body, headers=caller)
        expected = ok if name in allowed else 403
        assert response.status_code == expected, (role, name, response.text)


async def test_every_action_is_audited(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any
) -> None:
    admin = await _operator(client, settings, db, "security_admin")
    registered = await client.post(API, json=_REGISTER, headers=admin)
    assert registered.status_code == 201
    tmk = registered.json()["tmk"]
    assert (await client.post(f"{API}/BUS-A1/disable", headers=admin)).status_code == 204
    assert (await client.post(f"{API}/BUS-A1/enable", headers=admin)).status_code == 204
    rekeyed = await client.post(f"{API}/BUS-A1/rekey", headers=admin)
    assert rekeyed.status_code == 200 and rekeyed.json()["tmk_version"] == 2
    assert (await client.post(API, json=_REGISTER, headers=admin)).status_code == 409
    assert (await client.post(f"{API}/NO-SUCH/disable", headers=admin)).status_code == 404
    assert (await client.get(API, headers=admin)).status_code == 200
    assert (await client.get(f"{API}/suspense", headers=admin)).status_code == 200

    entries = list(reversed(await entries_for(db, "BUS-A1")))
    assert [(e.action, e.outcome) for e in entries] == [
        ("card.terminal.register", "success"),
        ("card.terminal.disable", "success"),
        ("card.terminal.enable", "success"),
        ("card.terminal.rekey", "success"),
        ("card.terminal.register", "failure"),
    ]
    actor = entries[0].actor_id
    assert actor is not None and all(e.actor_id == actor and e.actor_kind == "operator" for e in entries)
    assert entries[1].details == {"from": "active", "to": "disabled"}
    # The key itself is never in the log, only its check value.
    assert all(tmk not in str(e.details) and rekeyed.json()["tmk"] not in str(e.details) for e in entries)
    assert entries[3].details["tmk_version"] == 2
    [missing] = await entries_for(db, "NO-SUCH")
    assert (missing.action, missing.outcome) == ("card.terminal.disable", "failure")
    mine = {e.action for e in await entries_for(db, actor)}
    assert {"card.terminal.list", "card.terminal.suspense.list"} <= mine
    assert (await verify_chain(db)).ok


async def test_disable_and_rekey_end_the_terminal_session(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, rig: Rig, redis_client: aioredis.Redis
) -> None:
    """Through the admin API (its own registry, the app's Redis) against a running gateway."""
    admin = await _operator(client, settings, db, "security_admin")
    registered = await client.post(API, json=_REGISTER, headers=admin)
    assert registered.status_code == 201
    link = TerminalLink("BUS-A1", bytes.fromhex(registered.json()["tmk"]), *rig.address, timeout=10)
    rig.links.append(link)
    assert (await link.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK

    assert await redis_client.exists("card:term:s:BUS-A1")
    assert (await client.post(f"{API}/BUS-A1/disable", headers=admin)).status_code == 204
    assert not await redis_client.exists("card:term:s:BUS-A1")  # ended by the API's own registry
    with pytest.raises(LinkError) as refused:  # the open session ended; signing on again is refused
        await link.request(Heartbeat(), HeartbeatResponse)
    assert refused.value.code == ResultCode.TERMINAL_DISABLED
    assert (await client.post(f"{API}/BUS-A1/enable", headers=admin)).status_code == 204
    assert (await link.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK
    assert link.sign_ons == 2

    rekeyed = await client.post(f"{API}/BUS-A1/rekey", headers=admin)
    assert rekeyed.status_code == 200
    assert not await redis_client.exists("card:term:s:BUS-A1")
    with pytest.raises(LinkError) as refused:  # its session ended, and the old key signs on no more
        await link.request(Heartbeat(), HeartbeatResponse)
    assert refused.value.code == ResultCode.BAD_MAC
    injected = TerminalLink("BUS-A1", bytes.fromhex(rekeyed.json()["tmk"]), *rig.address, timeout=10)
    rig.links.append(injected)
    assert (await injected.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK

    # Audited as before: one entry per change, the chain intact.
    entries = list(reversed(await entries_for(db, "BUS-A1")))
    assert [(e.action, e.outcome) for e in entries] == [
        ("card.terminal.register", "success"),
        ("card.terminal.disable", "success"),
        ("card.terminal.enable", "success"),
        ("card.terminal.rekey", "success"),
    ]
    assert (await verify_chain(db)).ok


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"operator": "Bad Operator"}, "operator"),
        ({"operator": ""}, "operator"),
        ({"line": "b1"}, "line"),
        ({"site": "x" * 101}, "site"),
        ({"id": "BUS-A1\n"}, "id"),
    ],
)
async def test_a_registration_the_database_would_refuse_is_a_422_and_audited(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, change: dict[str, str], field: str
) -> None:
    admin = await _operator(client, settings, db, "security_admin")
    response = await client.post(API, json={**_REGISTER, **change}, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert [e["field"] for e in problem["errors"]] == [field]
    assert await db.fetchval("SELECT count(*) FROM card.terminals") == 0
    refused = await db.fetch(
        "SELECT outcome, target_id, details FROM identity.audit_events"
        " WHERE action = 'card.terminal.register'"
    )
    assert [(r["outcome"], r["target_id"], json.loads(r["details"])) for r in refused] == [
        (
            "failure",
            None if field == "id" else "BUS-A1",
            {"kind": "bus", "refused": "validation-error", "field": field},
        )
    ]
    # A valid registration still goes through afterwards.
    assert (await client.post(API, json=_REGISTER, headers=admin)).status_code == 201
