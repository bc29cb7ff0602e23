"""The other upstreams through their connectors: medical insurance, health, bus, government
services, utilities; data consistent with the seeded people."""

from __future__ import annotations

import pytest

from integrations.errors import BillAlreadyPaid, BillAmountMismatch, SlotTaken
from integrations.simulators.city import bill_amount
from integrations.simulators.control import SimulatorControl
from integrations.simulators.seed import (
    BUS_STOPS,
    DEMO_CITIZEN,
    DEPARTMENTS,
    LICENCES,
    PEOPLE,
    UTILITY_ACCOUNTS,
)
from integrations.wiring import Connectors


async def test_medical_insurance_account_with_settlements(registries: Connectors) -> None:
    account = (await registries.medical_insurance.account(DEMO_CITIZEN.social_security_number or "")).value
    assert account is not None
    assert account.status == "active"
    assert account.balance > 0
    assert all(s.fund_paid + s.self_paid == s.total for s in account.recent_settlements)
    assert (await registries.medical_insurance.account("000")).value is None


async def test_health_record_and_booking_an_appointment_once(
    registries: Connectors, upstreams: SimulatorControl
) -> None:
    health = registries.health
    record = (await health.record(DEMO_CITIZEN.health_card_id or "")).value
    assert record is not None
    assert record.health_card_id == DEMO_CITIZEN.health_card_id
    department = DEPARTMENTS[0]
    slots = (await health.slots(department.department_id)).value
    assert slots is not None
    assert slots.hospital == department.hospital
    free = next(s for s in slots.slots if s.available)
    card = DEMO_CITIZEN.health_card_id or ""
    first = await health.book(card, free.slot_id, idempotency_key="book-1")
    again = await health.book(card, free.slot_id, idempotency_key="book-1")  # a retried request
    assert again == first
    assert first.starts_at == free.starts_at
    other = next(p.health_card_id for p in PEOPLE[1:] if p.health_card_id)
    with pytest.raises(SlotTaken):
        await health.book(other or "", free.slot_id, idempotency_key="book-2")
    assert await health.appointments(card) == (first,)


async def test_a_booking_is_retried_safely_after_an_error(
    registries: Connectors, upstreams: SimulatorControl
) -> None:
    health = registries.health
    card = DEMO_CITIZEN.health_card_id or ""
    await health.record(card)  # the token first
    slots = (await health.slots(DEPARTMENTS[1].department_id)).value
    assert slots is not None
    await upstreams.set("health", fail_next=1)
    appointment = await health.book(card, slots.slots[0].slot_id, idempotency_key="retry-1")
    assert appointment.status == "booked"
    assert len(await health.appointments(card)) == 1


async def test_bus_arrivals_for_a_stop(registries: Connectors) -> None:
    stop = BUS_STOPS[0]
    fetched = await registries.bus.arrivals(stop.stop_id)
    assert fetched.value is not None
    assert fetched.value.name == stop.name
    assert {a.line for a in fetched.value.arrivals} == set(stop.lines)
    etas = [a.eta_seconds for a in fetched.value.arrivals]
    assert etas == sorted(etas)
    assert (await registries.bus.arrivals(stop.stop_id)).source == "cache"
    assert (await registries.bus.arrivals("nowhere")).value is None


async def test_government_applications_and_electronic_licences(registries: Connectors) -> None:
    applications = (await registries.gov_services.applications(DEMO_CITIZEN.id_number)).value
    assert {a.status for a in applications} == {"in_review", "completed"}
    licences = (await registries.gov_services.licences(DEMO_CITIZEN.id_number)).value
    expected = {lic.licence_number for lic in LICENCES if lic.holder_id_number == DEMO_CITIZEN.id_number}
    assert {lic.licence_number for lic in licences} == expected
    business = next(lic for lic in licences if lic.kind == "business_licence")
    assert business.credit_code is not None
    assert (await registries.gov_services.applications(PEOPLE[5].id_number)).value == ()


async def test_utility_bills_are_paid_once_per_reference(registries: Connectors) -> None:
    utilities = registries.utilities
    accounts = (await utilities.accounts(DEMO_CITIZEN.id_number)).value
    mine = {a.account_number for a in UTILITY_ACCOUNTS if a.holder_id_number == DEMO_CITIZEN.id_number}
    assert {a.account_number for a in accounts} == mine
    account = sorted(mine)[0]
    bills = (await utilities.bills(account)).value
    assert bills is not None
    unpaid = next(b for b in bills if b.status == "unpaid")
    assert unpaid.amount == bill_amount(account, unpaid.period)
    with pytest.raises(BillAmountMismatch):
        await utilities.pay(unpaid.bill_id, unpaid.amount + 1, "ref-0", "e_purse")
    receipt = await utilities.pay(unpaid.bill_id, unpaid.amount, "ref-1", "e_purse")
    assert (receipt.status, receipt.amount) == ("paid", unpaid.amount)
    assert await utilities.pay(unpaid.bill_id, unpaid.amount, "ref-1", "e_purse") == receipt
    with pytest.raises(BillAlreadyPaid):
        await utilities.pay(unpaid.bill_id, unpaid.amount, "ref-2", "channel")
