"""The lifecycle state machine through the service, against the real database."""

from __future__ import annotations

import datetime as dt
import uuid
from importlib import resources

import pytest

from card.applications import HolderDetails
from card.audit import Actor
from card.blacklist import EntryKind, build_delta, is_listed
from card.errors import CardClosed, CardExists, FrozenByOperator, InvalidTransition, NotEligible
from card.lifecycle.issuance import expiry_date
from card.lifecycle.service import CardService
from card.lifecycle.states import TRANSITIONS, Action, Status, transition
from identity.checks import validate_luhn
from tests.card.conftest import OPERATOR

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


async def test_issue_gives_three_applications_and_a_luhn_number(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    assert card.status == "active"
    assert validate_luhn(card.card_number) == card.card_number
    assert card.card_number.startswith(service.settings.issuer_prefix)
    assert len(card.card_number) == service.settings.number_length
    assert {a.type for a in card.applications} == {"transit_epurse", "social_security", "health"}
    assert card.epurse is not None
    assert card.epurse.balance == 0
    assert card.epurse.key_version == 1
    assert card.expires_on.year == NOW.year + service.settings.validity_years


async def test_second_card_refused_and_low_assurance_refused(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    await service.issue(holder, citizen, now=NOW)
    with pytest.raises(CardExists):
        await service.issue(holder, citizen, now=NOW)
    with pytest.raises(NotEligible):
        await service.issue(HolderDetails(person_id=uuid.uuid4(), loa=1), citizen, now=NOW)


async def test_loss_is_idempotent_and_blacklisted(
    service: CardService, holder: HolderDetails, citizen: Actor, db: object
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    lost = await service.report_loss(card.id, citizen, now=NOW)
    again = await service.report_loss(card.id, citizen, now=NOW)
    assert lost.status == again.status == "lost"
    history = await service.history(card.id)
    assert [e.action for e in history] == ["issue", "report_loss"]
    async with service.pool.acquire() as connection:
        assert await is_listed(connection, EntryKind.CARD, int(card.card_number))
        delta = await build_delta(connection, 0)
    assert int(card.card_number) in delta.values(delta.card_adds)


async def test_freeze_unfreeze_moves_the_blacklist(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    async with service.pool.acquire() as connection:
        start = (await build_delta(connection, 0)).to_version
    await service.freeze(card.id, citizen, now=NOW)
    async with service.pool.acquire() as connection:
        frozen = await build_delta(connection, start)
    assert frozen.values(frozen.card_adds) == [int(card.card_number)]
    await service.unfreeze(card.id, citizen, now=NOW)
    async with service.pool.acquire() as connection:
        after = await build_delta(connection, frozen.to_version)
        netted = await build_delta(connection, start)
    assert after.values(after.card_removes) == [int(card.card_number)]
    assert netted.card_adds == netted.card_removes == b""  # added then removed since `start`


@pytest.mark.parametrize(
    ("status", "action"),
    [(s, a) for a in Action for s in Status if s not in TRANSITIONS[a]],
)
def test_every_refused_transition(status: Status, action: Action) -> None:
    with pytest.raises(CardClosed if status is Status.CLOSED else InvalidTransition) as info:
        transition(action, status)
    assert info.value.problem_status == 409


async def test_operations_on_a_closed_card_are_409(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    await service.close(card.id, citizen, now=NOW)
    for operation in (service.freeze, service.unfreeze, service.report_loss, service.close, service.reissue):
        with pytest.raises(CardClosed):
            await operation(card.id, citizen, now=NOW)
    with pytest.raises(CardClosed):
        await service.request_physical(card.id, citizen, now=NOW)
    # A closed card no longer counts: the person may apply again.
    assert (await service.issue(holder, citizen, now=NOW)).status == "active"


async def test_reissue_after_loss(service: CardService, holder: HolderDetails, citizen: Actor) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    await service.report_loss(card.id, citizen, now=NOW)
    new = await service.reissue(card.id, citizen, now=NOW)
    assert new.card_number != card.card_number
    assert new.replaces_id == card.id
    old = await service.view(card.id)
    assert old.status == "replaced"
    assert old.balance_transfer == "scheduled"
    assert (await service.view_for_holder(holder.person_id)).id == new.id
    with pytest.raises(InvalidTransition):
        await service.freeze(card.id, citizen, now=NOW)


async def test_ensure_card_is_idempotent(service: CardService, holder: HolderDetails, citizen: Actor) -> None:
    first = await service.ensure_card(holder, citizen, now=NOW)
    again = await service.ensure_card(holder, citizen, now=NOW)
    assert first.id == again.id
    with pytest.raises(NotEligible):
        await service.ensure_card(HolderDetails(person_id=uuid.uuid4(), loa=1), citizen, now=NOW)


async def test_issue_and_reissue_on_29_february(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    # 2028 is a leap year, 2038 is not: the card expires on 28 February, not a day later.
    leap_day = dt.datetime(2028, 2, 29, 9, 0, tzinfo=dt.UTC)
    card = await service.issue(holder, citizen, now=leap_day)
    assert card.issued_on == dt.date(2028, 2, 29)
    assert card.expires_on == dt.date(2028 + service.settings.validity_years, 2, 28)
    new = await service.reissue(card.id, citizen, now=leap_day)
    assert new.expires_on == dt.date(2028 + service.settings.validity_years, 2, 28)
    assert (await service.view(new.id)).expires_on == new.expires_on


def test_expiry_date_keeps_the_day_when_it_exists() -> None:
    assert expiry_date(dt.date(2025, 6, 1), 10) == dt.date(2035, 6, 1)
    assert expiry_date(dt.date(2028, 2, 29), 4) == dt.date(2032, 2, 29)  # leap year to leap year
    assert expiry_date(dt.date(2028, 2, 29), 10) == dt.date(2038, 2, 28)


async def test_the_holder_may_lift_only_their_own_freeze(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    assert (await service.freeze(card.id, citizen, now=NOW)).frozen_by == "holder"
    lifted = await service.unfreeze(card.id, citizen, now=NOW)
    assert (lifted.status, lifted.frozen_by) == ("active", None)

    assert (await service.freeze(card.id, OPERATOR, now=NOW)).frozen_by == "operator"
    with pytest.raises(FrozenByOperator):
        await service.unfreeze(card.id, citizen, now=NOW)
    # Freezing it again changes nothing: the freeze stays the service's.
    assert (await service.freeze(card.id, citizen, now=NOW)).frozen_by == "operator"
    assert (await service.view(card.id)).status == "frozen"
    lifted = await service.unfreeze(card.id, OPERATOR, now=NOW)
    assert (lifted.status, lifted.frozen_by) == ("active", None)
    assert [(e.action, e.actor_kind, e.details.get("frozen_by")) for e in await service.history(card.id)] == [
        ("issue", "person", None),
        ("freeze", "person", "holder"),
        ("unfreeze", "person", None),
        ("freeze", "operator", "operator"),
        ("unfreeze", "operator", None),
    ]


async def test_an_operator_freezing_a_card_the_holder_froze_makes_it_theirs(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    await service.freeze(card.id, citizen, now=NOW)
    taken = await service.freeze(card.id, OPERATOR, now=NOW)
    assert (taken.status, taken.frozen_by) == ("frozen", "operator")
    with pytest.raises(FrozenByOperator):
        await service.unfreeze(card.id, citizen, now=NOW)
    *_, first, second = await service.history(card.id)
    assert (second.action, second.from_status, second.to_status) == ("freeze", "frozen", "frozen")
    assert "blacklist_version" in first.details and "blacklist_version" not in second.details  # listed once
    # Nor may the holder get round the service's hold by reporting the card lost; the service may.
    with pytest.raises(FrozenByOperator):
        await service.report_loss(card.id, citizen, now=NOW)
    assert (await service.report_loss(card.id, OPERATOR, now=NOW)).frozen_by is None


async def test_a_freeze_nobody_recorded_is_not_the_holders_to_lift(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    # What the migration leaves on a frozen card whose freeze has no history: the service's.
    card = await service.issue(holder, citizen, now=NOW)
    await service.freeze(card.id, citizen, now=NOW)
    await service.pool.execute("UPDATE card.cards SET frozen_by = NULL WHERE id = $1", card.id)
    with pytest.raises(FrozenByOperator):
        await service.unfreeze(card.id, citizen, now=NOW)


async def test_the_migration_takes_who_froze_from_the_history(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    mine = await service.issue(holder, citizen, now=NOW)
    other = HolderDetails(person_id=uuid.uuid4(), loa=2)
    theirs = await service.issue(other, Actor(kind="person", id=str(other.person_id)), now=NOW)
    await service.freeze(mine.id, citizen, now=NOW)
    await service.freeze(theirs.id, OPERATOR, now=NOW)
    await service.pool.execute("UPDATE card.cards SET frozen_by = NULL")
    migration = (resources.files("card") / "migrations" / "0110_frozen_by.sql").read_text()
    await service.pool.execute(migration[migration.index("UPDATE") :])  # the backfill, as applied
    assert (await service.view(mine.id)).frozen_by == "holder"
    assert (await service.view(theirs.id)).frozen_by == "operator"
