"""Nothing tells an outsider (or any citizen with an L1 account) which mobile or ID numbers are
registered: not the answers, not the lockout state, not the time a request takes (ASVS 6.3.8)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from identity.context import ClientInfo
from identity.persons.service import PersonService
from identity.wiring import build_core
from tests.identity.conftest import API, LI, WANG, ZHANG, Flows, bearer

Client = AsyncTestClient[Litestar]


async def test_a_taken_id_number_is_told_only_to_whoever_knows_the_name(
    client: Client, flows: Flows, db: Any
) -> None:
    await flows.verified(ZHANG)  # ZHANG's ID number is registered
    prober = await flows.register(LI.mobile)
    guess = {"name": "某某", "id_number": ZHANG.id_number}  # any name
    statuses = [
        (await client.post(f"{API}/me/verification", json=guess, headers=bearer(prober["token"]))).status_code
        for _ in range(6)
    ]
    # The same answers as for an ID number nobody registered: the registry's, and limited.
    assert statuses == [422] * 5 + [429]
    unregistered = await flows.register(WANG.mobile)
    other = {"name": "某某", "id_number": LI.id_number}
    answer = await client.post(f"{API}/me/verification", json=other, headers=bearer(unregistered["token"]))
    assert answer.status_code == 422 and answer.json()["errors"][0]["rule"] == "registry_name_mismatch"
    # With the name that goes with it (the registry matches both), "taken" is said, and counted.
    right = {"name": ZHANG.name, "id_number": ZHANG.id_number}
    taken = await client.post(f"{API}/me/verification", json=right, headers=bearer(unregistered["token"]))
    assert taken.status_code == 409
    failures = await db.fetch(
        "SELECT details->>'rule' AS rule FROM identity.audit_events"
        " WHERE action = 'identity.person.verify' AND outcome = 'failure' AND target_id = $1",
        unregistered["account_id"],
    )
    assert [f["rule"] for f in failures] == ["name_mismatch", "id_number_taken"]


async def test_lockout_does_not_depend_on_whether_the_number_is_registered(
    client: Client, flows: Flows
) -> None:
    await flows.register(ZHANG.mobile)  # registered; LI's number is not

    async def locked_after_wrong_registration_codes(mobile: str) -> list[int]:
        for _ in range(5):
            wrong = await client.post(f"{API}/registrations", json={"mobile": mobile, "code": "000000"})
            assert wrong.status_code == 422, wrong.text
        sign_in = await client.post(f"{API}/sessions/code", json={"mobile": mobile, "code": "000000"})
        password = await client.post(
            f"{API}/sessions/password", json={"mobile": mobile, "password": "x" * 12}
        )
        return [sign_in.status_code, password.status_code]

    assert await locked_after_wrong_registration_codes(ZHANG.mobile) == [429, 429]
    assert await locked_after_wrong_registration_codes(LI.mobile) == [429, 429]


class _Registries:
    population: Any = None
    enterprise: Any = None


class _HeldGateway:
    """An SMS gateway that delivers nothing until released: a request that awaited it would hang."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.delivered: list[str] = []

    async def send(self, mobile: str, text: str) -> None:
        await self.released.wait()
        self.delivered.append(mobile)


async def test_sending_a_sign_in_code_never_waits_for_the_gateway(
    database_url: str, redis_client: aioredis.Redis, settings: Settings, keyring: Keyring
) -> None:
    """Only registered numbers get a sign-in code; were the gateway awaited in the request, they
    would be answered a network call later than unknown numbers. The code is queued instead."""
    pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        gateway = _HeldGateway()
        core = build_core(
            pool=pool,
            redis=redis_client,
            settings=settings.identity,
            keyring=keyring,
            registries=_Registries(),
            development=True,
            sms=gateway,
        )
        persons = PersonService(core)
        aid = uuid.uuid4()
        await pool.execute(
            "INSERT INTO identity.accounts (id, mobile_enc, mobile_index) VALUES ($1, $2, $3)",
            aid,
            core.seal("mobile", aid, ZHANG.mobile),
            core.index.mobile(ZHANG.mobile),
        )
        client = ClientInfo(address="10.0.0.9")
        # The timeout only keeps a regression from hanging the run: nothing here is timed.
        registered = await asyncio.wait_for(persons.send_code("login", ZHANG.mobile, client), 60)
        unknown = await asyncio.wait_for(persons.send_code("login", LI.mobile, client), 60)
        assert registered.expires_in == unknown.expires_in
        assert gateway.delivered == []  # both answered while the gateway still holds the message
        gateway.released.set()
        await core.outbox.settle()
        assert gateway.delivered == [ZHANG.mobile]  # and it is delivered after the answer
    finally:
        await pool.close()
