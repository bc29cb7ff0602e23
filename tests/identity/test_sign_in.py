"""Sign-in by code or password, and lockout that holds under parallel attempts."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from identity.admin.models import AccountSummary
from identity.admin.service import AdminService
from identity.audit import seal_all
from identity.auth import Principal
from identity.context import ClientInfo
from identity.errors import AccountUnavailable
from identity.persons.models import SessionIssued
from identity.persons.service import PersonService
from identity.wiring import build_core
from tests.identity.conftest import API, LI, WANG, ZHANG, Flows, bearer

PASSWORD = "correct horse battery staple"


async def test_code_sign_in_reaches_the_verified_level(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.verified(ZHANG)
    session = await flows.login_code(ZHANG.mobile)
    assert session["loa"] == 2
    whoami = (await client.get(f"{API}/session", headers=bearer(session["token"]))).json()
    assert whoami["amr"] == ["sms"]


async def test_password_sign_in(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    ok = await client.post(f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD})
    assert ok.status_code == 201 and ok.json()["loa"] == 1
    bad = await client.post(
        f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": "nope nope"}
    )
    assert bad.status_code == 401 and bad.json()["type"] == "/problems/invalid-credentials"
    unknown = await client.post(f"{API}/sessions/password", json={"mobile": LI.mobile, "password": PASSWORD})
    assert unknown.status_code == 401  # the same answer as a wrong password


async def test_sign_out_ends_the_session(client: AsyncTestClient[Litestar], flows: Flows) -> None:
    session = await flows.register(ZHANG.mobile)
    assert (
        await client.delete(f"{API}/sessions/current", headers=bearer(session["token"]))
    ).status_code == 204
    assert (await client.get(f"{API}/me", headers=bearer(session["token"]))).status_code == 401


async def test_parallel_wrong_codes_evaluate_exactly_five(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile)
    code = await flows.send_code(ZHANG.mobile, "login")
    wrong = [f"{(int(code) + i) % 10**6:06d}" for i in range(1, 51)]
    responses = await asyncio.gather(
        *(client.post(f"{API}/sessions/code", json={"mobile": ZHANG.mobile, "code": c}) for c in wrong)
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [422] * 5 + [429] * 45
    assert all(int(r.headers["retry-after"]) > 0 for r in responses if r.status_code == 429)
    # Locked out: even the right code is refused now, and it stays unused.
    right = await client.post(f"{API}/sessions/code", json={"mobile": ZHANG.mobile, "code": code})
    assert right.status_code == 429


async def test_parallel_wrong_passwords_evaluate_exactly_five(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    responses = await asyncio.gather(
        *(
            client.post(
                f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": f"guess {i:04d}"}
            )
            for i in range(50)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * 5 + [429] * 45
    right = await client.post(f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD})
    assert right.status_code == 429


async def test_a_right_password_does_not_use_up_attempts(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    await flows.register(ZHANG.mobile, password=PASSWORD)
    for _ in range(8):
        ok = await client.post(
            f"{API}/sessions/password", json={"mobile": ZHANG.mobile, "password": PASSWORD}
        )
        assert ok.status_code == 201


@pytest.fixture
def identity_settings(settings_with_upstreams: Settings) -> Settings:
    """A low per-address limit, to see it without hundreds of requests."""
    return settings_with_upstreams.replace(
        identity=msgspec.structs.replace(settings_with_upstreams.identity, address_failure_limit=7)
    )


async def test_failures_are_limited_per_client_address_across_accounts(
    client: AsyncTestClient[Litestar], flows: Flows
) -> None:
    for person in (ZHANG, LI, WANG):
        await flows.register(person.mobile, password=PASSWORD)
    statuses = []
    for person in (ZHANG, LI, WANG):
        for i in range(3):
            body = {"mobile": person.mobile, "password": f"wrong {i:04d}"}
            statuses.append((await client.post(f"{API}/sessions/password", json=body)).status_code)
    assert statuses == [401] * 7 + [429] * 2


class _NoRegistries:
    population: Any = None
    enterprise: Any = None


class _NoSms:
    async def send(self, mobile: str, text: str) -> None:
        pass


async def test_a_freeze_racing_sign_ins_leaves_no_live_session(
    database_url: str, redis_client: aioredis.Redis, settings: Settings, keyring: Keyring
) -> None:
    """Sign-ins publish the session to Redis, then record it in one statement that share-locks the
    active account; a freeze concurrent with them must still end every session it lets through."""
    pool: Any = await asyncpg.create_pool(database_url, min_size=4, max_size=12)
    try:
        core = build_core(
            pool=pool,
            redis=redis_client,
            settings=settings.identity,
            keyring=keyring,
            registries=_NoRegistries(),
            development=True,
            sms=_NoSms(),
        )
        persons, admin = PersonService(core), AdminService(core)
        account_id = uuid.uuid4()
        await pool.execute(
            "INSERT INTO identity.accounts (id, mobile_enc, mobile_index) VALUES ($1, $2, $3)",
            account_id,
            core.seal("mobile", account_id, ZHANG.mobile),
            core.index.mobile(ZHANG.mobile),
        )
        operator = Principal(
            account_id=uuid.uuid4(),
            kind="operator",
            loa=2,
            session_id=uuid.uuid4(),
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            operator_roles=frozenset({"security_admin"}),
        )
        client = ClientInfo(address="10.0.0.1")
        outcomes: list[Any] = []
        for _ in range(5):
            outcomes += await asyncio.gather(
                *(persons.open_session(account_id, 1, ("sms",), client) for _ in range(12)),
                admin.set_frozen(operator, client, account_id, frozen=True, reason="the race"),
                return_exceptions=True,
            )
            for outcome in outcomes:
                if isinstance(outcome, SessionIssued):
                    assert await core.sessions.resolve(outcome.token) is None
                else:
                    assert isinstance(outcome, AccountUnavailable | AccountSummary), outcome
            live = await pool.fetchval(
                "SELECT count(*) FROM identity.sessions WHERE account_id = $1 AND revoked_at IS NULL",
                account_id,
            )
            assert live == 0
            await admin.set_frozen(operator, client, account_id, frozen=False, reason="next round")
        issued = [o for o in outcomes if isinstance(o, SessionIssued)]
        refused = [o for o in outcomes if isinstance(o, AccountUnavailable)]
        assert len(issued) + len(refused) == 60
        # Every session recorded is audited, exactly once.
        await seal_all(pool)
        audited = await pool.fetchval(
            "SELECT count(*) FROM identity.audit_log WHERE action = 'identity.session.create'"
        )
        assert audited == len(issued)
    finally:
        await pool.close()
