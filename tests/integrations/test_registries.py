"""The registries' answers through the real connectors and the real simulator process."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from integrations.connectors import EnterpriseRegistryConnector
from integrations.registries import (
    EnterpriseRegistry,
    PersonVerification,
    PopulationRegistry,
    UpstreamRejected,
    UpstreamUnavailable,
    VerificationResult,
)
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import DEMO_CITIZEN, ENTERPRISES, PEOPLE
from integrations.wiring import Connectors


async def test_registries_fixture_implements_the_protocols(registries: Connectors) -> None:
    population: PopulationRegistry = registries.population
    enterprise: EnterpriseRegistry = registries.enterprise
    assert (await population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)).result == "match"
    found = await enterprise.find_enterprise(ENTERPRISES[0].credit_code)
    assert found is not None
    assert found.legal_representative_id_number == DEMO_CITIZEN.id_number


async def test_a_match_returns_the_registry_view(registries: Connectors) -> None:
    answer = await registries.population.verify_person("张三", "44030419900307123x")  # lowercase x
    assert answer == PersonVerification(
        result=VerificationResult.MATCH, birth_date=dt.date(1990, 3, 7), gender="M", region_code="440304"
    )


@pytest.mark.parametrize(
    ("name", "id_number", "expected"),
    [
        ("李四", "44030419900307123X", VerificationResult.NAME_MISMATCH),
        ("张三", "110101199003074578", VerificationResult.NOT_FOUND),
        ("钱七", "320583196001014560", VerificationResult.DECEASED),
    ],
)
async def test_other_verification_results_carry_no_personal_data(
    registries: Connectors, name: str, id_number: str, expected: VerificationResult
) -> None:
    answer = await registries.population.verify_person(name, id_number)
    assert answer == PersonVerification(result=expected)


async def test_every_living_seeded_person_matches(registries: Connectors) -> None:
    for person in PEOPLE:
        answer = await registries.population.verify_person(person.name, person.id_number)
        expected = VerificationResult.MATCH if person.alive else VerificationResult.DECEASED
        assert answer.result is expected, person.name
        if person.alive:
            assert answer.gender == person.gender


async def test_one_token_serves_many_calls_and_a_revoked_one_is_replaced(
    registries: Connectors, upstreams: SimulatorControl
) -> None:
    for _ in range(3):
        await registries.population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)
    token_path = upstreams.urls["population"].split("/", 3)[3]
    view = await upstreams.view("population")
    assert view.requests[f"/{token_path}/oauth/token"] == 1
    await upstreams.reset("population")  # forgets every token it issued: the next call gets a 401
    answer = await registries.population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)
    assert answer.result == "match"
    view = await upstreams.view("population")
    assert view.requests[f"/{token_path}/oauth/token"] == 1
    assert view.data_requests == 2  # the refused call and its retry with the new token


async def test_a_wrong_client_secret_is_rejected_not_retried(
    connect: Callable[..., Any], upstreams: SimulatorControl
) -> None:
    population = connect("population", credential="not-the-secret")
    with pytest.raises(UpstreamRejected):
        await population.verify_person(DEMO_CITIZEN.name, DEMO_CITIZEN.id_number)
    assert (await upstreams.view("population")).data_requests == 0


async def test_enterprise_registration_names_the_legal_representative(registries: Connectors) -> None:
    for seeded in ENTERPRISES:
        found = await registries.enterprise.find_enterprise(seeded.credit_code)
        assert found is not None
        assert (found.name, found.kind, found.status) == (seeded.name, seeded.kind, seeded.status)
        assert found.registered_on == seeded.registered_on
        representative = next(p for p in PEOPLE if p.id_number == seeded.legal_representative_id_number)
        assert found.legal_representative_name == representative.name
        assert found.legal_representative_id_number == representative.id_number


async def test_an_unknown_credit_code_is_none(registries: Connectors) -> None:
    assert await registries.enterprise.find_enterprise("91110000MA00000000") is None


async def test_a_wrong_api_key_is_rejected(connect: Callable[..., Any]) -> None:
    with pytest.raises(UpstreamRejected):
        await connect("enterprise", credential="wrong").find_enterprise(ENTERPRISES[0].credit_code)


async def test_social_security_answers_signed_requests(registries: Connectors) -> None:
    fetched = await registries.social_security.insured_record(DEMO_CITIZEN.social_security_number or "")
    record = fetched.value
    assert record is not None
    assert record.status == "contributing"
    assert record.pension is None
    assert len(record.recent_contributions) == 6
    assert all(c.personal == c.base * 8 // 100 for c in record.recent_contributions)
    pensioner = next(p for p in PEOPLE if p.name == "王五")
    record = (await registries.social_security.insured_record(pensioner.social_security_number or "")).value
    assert record is not None
    assert record.status == "receiving"
    assert record.pension is not None
    assert (await registries.social_security.insured_record("000000000000000000")).value is None


async def test_a_bad_signature_is_rejected(connect: Callable[..., Any]) -> None:
    with pytest.raises(UpstreamRejected):
        await connect("social_security", credential="wrong").insured_record("440304199003071230")


async def test_an_upstream_without_url_is_unavailable(redis_client: aioredis.Redis) -> None:
    connector = EnterpriseRegistryConnector(base_url="", api_key="k", redis=redis_client)
    try:
        with pytest.raises(UpstreamUnavailable, match="no upstream URL"):
            await connector.find_enterprise(ENTERPRISES[0].credit_code)
    finally:
        await connector.aclose()


async def test_the_legal_representatives_id_number_is_sealed_in_the_cache(
    connect: Callable[..., Any], redis_client: aioredis.Redis, upstreams: SimulatorControl
) -> None:
    company = ENTERPRISES[0]
    enterprise = connect("enterprise")
    first = await enterprise.lookup(company.credit_code)
    assert first.source == "upstream"
    stored = [await redis_client.get(k) async for k in redis_client.scan_iter("citizen:cache:enterprise:*")]
    assert stored
    for raw in stored:
        assert isinstance(raw, bytes)  # the entry is there (and the client does not decode replies)
        assert company.legal_representative_id_number.encode() not in raw.upper()
        assert company.name.encode() in raw  # the public register data is there in the clear
    await upstreams.set("enterprise", outage=True)  # the answer below can only come from the cache
    again = await enterprise.lookup(company.credit_code)
    assert again.source == "cache"
    assert again.value is not None
    assert again.value.legal_representative_id_number == company.legal_representative_id_number


async def test_without_the_key_a_registration_is_not_cached(
    connect: Callable[..., Any], redis_client: aioredis.Redis, upstreams: SimulatorControl
) -> None:
    enterprise = connect("enterprise", pii_key=None)
    assert (await enterprise.lookup(ENTERPRISES[0].credit_code)).source == "upstream"
    assert [k async for k in redis_client.scan_iter("citizen:cache:enterprise:*")] == []
    unknown = await enterprise.lookup("91440300XXXXXXXXX0")  # "no such enterprise" holds no one's data
    assert unknown.value is None
    assert [k async for k in redis_client.scan_iter("citizen:cache:enterprise:*")] != []


async def test_an_entry_sealed_under_another_key_is_a_miss(
    connect: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    company = ENTERPRISES[0]
    assert (await connect("enterprise").lookup(company.credit_code)).source == "upstream"
    other = connect("enterprise", pii_key=bytes(32))
    assert (await other.lookup(company.credit_code)).source == "upstream"
