"""Social security and health applications through integrations' connectors, against the simulators.

The ID numbers here come from a dict (the directory takes any reader); the API tests read them
through identity (``test_integration.py``).
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import redis.asyncio as aioredis

from backend.db import Pool
from card.applications import HolderDetails
from card.audit import Actor
from card.directory import ConnectorDirectory
from card.keys import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService
from card.lifecycle.views import CardView
from card.settings import CardSettings
from card.summary import card_summary
from identity.checks import mask_resident_id
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import PEOPLE
from integrations.wiring import Connectors

NOW = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
ZHANG, ZHAO = PEOPLE[0], PEOPLE[3]  # ZHAO has a health card and no social security record


@pytest.fixture
def id_numbers() -> dict[uuid.UUID, str]:
    return {}


@pytest.fixture
def directed(
    pool: Pool,
    keys: SoftwareKeyStore,
    card_settings: CardSettings,
    registries: Connectors,
    id_numbers: dict[uuid.UUID, str],
) -> CardService:
    async def id_number(person_id: uuid.UUID) -> str | None:
        return id_numbers.get(person_id)

    directory = ConnectorDirectory(lambda: registries, id_number)
    return CardService(pool, keys, card_settings, ledger=PaymentsEpurseLedger(), directory=directory)


def _apps(card: CardView) -> dict[str, tuple[str, dict[str, object]]]:
    return {a.type: (a.status, a.attributes) for a in card.applications}


def _holder(id_numbers: dict[uuid.UUID, str], id_number: str | None) -> HolderDetails:
    person = uuid.uuid4()
    if id_number is not None:
        id_numbers[person] = id_number
    return HolderDetails(person_id=person, loa=2)


async def test_issuance_fills_social_security_and_health(
    directed: CardService, id_numbers: dict[uuid.UUID, str], registries: Connectors
) -> None:
    holder = _holder(id_numbers, ZHANG.id_number)
    card = await directed.issue(holder, Actor(kind="person", id=str(holder.person_id)), now=NOW)
    apps = _apps(card)
    assert ZHANG.social_security_number is not None
    assert apps["social_security"] == (
        "active",
        {
            "social_security_number": mask_resident_id(ZHANG.social_security_number),  # never in clear
            "insurance_status": "contributing",
            "pending_reason": None,
        },
    )
    status, health = apps["health"]
    assert status == "active"
    assert health["health_card_id"] == ZHANG.health_card_id
    assert health["health_record_link"] == f"{registries.health.base_url}/v1/records/{ZHANG.health_card_id}"
    assert health["pending_reason"] is None
    assert _apps(await directed.view(card.id)) == apps  # as stored
    summary = await card_summary(directed.pool, holder.person_id)
    assert summary is not None
    assert summary.applications == {
        "health": "active",
        "social_security": "active",
        "transit_epurse": "active",
    }


async def test_no_record_no_id_number_and_no_directory_stay_pending(
    directed: CardService, id_numbers: dict[uuid.UUID, str], service: CardService
) -> None:
    system = Actor(kind="system", id="test")
    zhao = _apps(await directed.issue(_holder(id_numbers, ZHAO.id_number), system, now=NOW))
    assert zhao["social_security"][0] == "pending"
    assert zhao["social_security"][1]["pending_reason"] == "not_found"
    assert zhao["health"][0] == "active"

    nobody = _apps(await directed.issue(_holder(id_numbers, None), system, now=NOW))
    assert {t: s for t, (s, _) in nobody.items()} == {
        "transit_epurse": "active",
        "social_security": "pending",
        "health": "pending",
    }
    assert nobody["health"][1]["pending_reason"] == "no_id_number"

    given = HolderDetails(person_id=uuid.uuid4(), loa=2, social_security_number="440300199001011234")
    plain = _apps(await service.issue(given, system, now=NOW))  # no directory plugged in
    assert plain["social_security"] == (
        "pending",
        {
            "social_security_number": "440***********1234",
            "insurance_status": "unknown",
            "pending_reason": "no_directory",
        },
    )


async def test_an_upstream_failure_never_fails_issuance_and_a_refresh_fills_it_in(
    directed: CardService,
    id_numbers: dict[uuid.UUID, str],
    upstreams: SimulatorControl,
    redis_client: aioredis.Redis,
) -> None:
    holder = _holder(id_numbers, ZHANG.id_number)
    actor = Actor(kind="person", id=str(holder.person_id))
    await upstreams.set("social_security", outage=True)
    await upstreams.set("health", malformed_next=10)
    card = await directed.issue(holder, actor, now=NOW)
    apps = _apps(card)
    assert card.status == "active"
    assert apps["social_security"][0] == apps["health"][0] == "pending"
    assert apps["social_security"][1]["pending_reason"] == "upstream_unavailable"
    assert apps["health"][1]["pending_reason"] == "upstream_error"

    # Still failing: nothing changes, nothing is recorded.
    again = await directed.refresh_applications(card.id, actor, now=NOW)
    assert _apps(again) == apps
    assert [e.action for e in await directed.history(card.id)] == ["issue"]

    # The upstreams are back; their breakers opened meanwhile (the connectors' Redis state): the
    # cooldown passing is their state being cleared.
    await upstreams.reset()
    await redis_client.delete("citizen:breaker:social_security", "citizen:breaker:health")
    refreshed = _apps(await directed.refresh_applications(card.id, actor, transient_only=True, now=NOW))
    assert refreshed["social_security"][0] == refreshed["health"][0] == "active"
    assert refreshed["social_security"][1]["insurance_status"] == "contributing"
    history = await directed.history(card.id)
    assert [e.action for e in history] == ["issue", "refresh_applications"]
    assert sorted(history[-1].details["applications"]) == ["health:active", "social_security:active"]
    # Nothing pending any more: a further refresh asks no upstream and records nothing.
    before = await upstreams.data_requests("social_security")
    await directed.refresh_applications(card.id, actor, now=NOW)
    assert await upstreams.data_requests("social_security") == before
    assert len(await directed.history(card.id)) == 2


async def test_a_closed_card_is_not_refreshed(
    directed: CardService, id_numbers: dict[uuid.UUID, str], upstreams: SimulatorControl
) -> None:
    holder = _holder(id_numbers, ZHANG.id_number)
    actor = Actor(kind="person", id=str(holder.person_id))
    await upstreams.set("social_security", outage=True)
    card = await directed.issue(holder, actor, now=NOW)
    await directed.close(card.id, actor, now=NOW)
    await upstreams.reset()
    closed = await directed.refresh_applications(card.id, actor, now=NOW)
    assert {a.status for a in closed.applications} == {"closed"}
