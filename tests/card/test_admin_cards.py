"""The operators' card API: who may unfreeze what, personal data masked in every view, every read
of a card audited (actor and card, never personal data)."""

from __future__ import annotations

import json
import uuid
from importlib import resources
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from identity.audit import entries_for
from identity.checks import mask_resident_id
from integrations.simulators.seed import PEOPLE
from tests.card.conftest import operator_headers

API = "/api/v1/cards"
ADMIN = "/api/v1/admin/cards"


async def test_the_citizen_cannot_get_round_an_operators_freeze(
    client: AsyncTestClient[Litestar], citizen_headers: dict[str, str], operator: dict[str, str]
) -> None:
    """A service hold is not lifted by reporting the card lost, replacing it (a new active card
    with the balance) or closing it (the balance refunded): each is refused to the holder."""
    card = (await client.post(API, headers=citizen_headers)).json()
    assert (await client.post(f"{ADMIN}/{card['id']}/freeze", headers=operator)).status_code == 200
    for action in ("loss", "reissue", "close"):
        refused = await client.post(f"{API}/me/{action}", headers=citizen_headers)
        assert refused.status_code == 403, (action, refused.text)
        assert refused.json()["type"] == "/problems/card-frozen-by-operator"
    me = (await client.get(f"{API}/me", headers=citizen_headers)).json()
    assert (me["id"], me["status"], me["frozen_by"]) == (card["id"], "frozen", "operator")
    assert (await client.post(f"{API}/me/freeze", headers=citizen_headers)).status_code == 200  # a no-op
    # The holder's own freeze stays theirs to act on: replacing the card is allowed.
    assert (await client.post(f"{ADMIN}/{card['id']}/unfreeze", headers=operator)).status_code == 200
    assert (await client.post(f"{API}/me/freeze", headers=citizen_headers)).status_code == 200
    replaced = await client.post(f"{API}/me/reissue", headers=citizen_headers)
    assert replaced.status_code == 201, replaced.text


async def test_the_citizen_cannot_lift_an_operators_freeze(
    client: AsyncTestClient[Litestar],
    citizen_headers: dict[str, str],
    operator: dict[str, str],
    settings: Settings,
    db: Any,
) -> None:
    card = (await client.post(API, headers=citizen_headers)).json()
    frozen = await client.post(f"{ADMIN}/{card['id']}/freeze", headers=operator)
    assert (frozen.json()["status"], frozen.json()["frozen_by"]) == ("frozen", "operator")
    assert (await client.get(f"{API}/me", headers=citizen_headers)).json()["frozen_by"] == "operator"

    refused = await client.post(f"{API}/me/unfreeze", headers=citizen_headers)
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/card-frozen-by-operator"
    auditor = await operator_headers(client, settings, db, "auditor")
    assert (await client.post(f"{ADMIN}/{card['id']}/unfreeze", headers=auditor)).status_code == 403
    assert (await client.get(f"{API}/me", headers=citizen_headers)).json()["status"] == "frozen"

    lifted = await client.post(f"{ADMIN}/{card['id']}/unfreeze", headers=operator)
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["status"], lifted.json()["frozen_by"]) == ("active", None)
    # The holder's own freeze stays theirs to lift.
    assert (await client.post(f"{API}/me/freeze", headers=citizen_headers)).json()["frozen_by"] == "holder"
    assert (await client.post(f"{API}/me/unfreeze", headers=citizen_headers)).json()["status"] == "active"
    entries = reversed(await entries_for(db, uuid.UUID(card["id"])))
    assert [(e.action, e.actor_kind) for e in entries if e.action.endswith("freeze")] == [
        ("card.freeze", "operator"),
        ("card.unfreeze", "operator"),
        ("card.freeze", "person"),
        ("card.unfreeze", "person"),
    ]


async def test_operators_see_the_social_security_number_masked_and_every_read_is_audited(
    client: AsyncTestClient[Litestar],
    citizen_headers: dict[str, str],
    settings: Settings,
    db: Any,
) -> None:
    number = PEOPLE[0].social_security_number
    assert number is not None  # the seeded citizen has a social security record
    card = (await client.post(API, headers=citizen_headers)).json()
    auditor = await operator_headers(client, settings, db, "auditor")
    found = await client.get(ADMIN, params={"card_number": card["card_number"]}, headers=auditor)
    assert [c["id"] for c in found.json()] == [card["id"]]
    holder_id = found.json()[0]["holder_id"]
    viewed = (await client.get(f"{ADMIN}/{card['id']}", headers=auditor)).json()
    assert (await client.get(f"{ADMIN}/{card['id']}/history", headers=auditor)).status_code == 200
    assert (await client.get(f"{ADMIN}/{uuid.uuid4()}", headers=auditor)).status_code == 404

    social = {a["type"]: a for a in viewed["applications"]}["social_security"]["attributes"]
    assert social["social_security_number"] == mask_resident_id(number) != number
    mine = (await client.get(f"{API}/me", headers=citizen_headers)).json()
    assert number not in json.dumps(mine) and number not in json.dumps(viewed)
    stored = await db.fetchval("SELECT string_agg(attributes::text, '') FROM card.applications")
    assert number not in stored  # nor in clear at rest

    reads = [e for e in await entries_for(db, uuid.UUID(card["id"])) if e.action.startswith("card.admin.")]
    assert sorted((e.action, e.actor_kind, e.target_kind) for e in reads) == [
        ("card.admin.history", "operator", "card"),
        ("card.admin.view", "operator", "card"),
    ]
    [search] = await db.fetch(
        "SELECT actor_id, target_id, details FROM identity.audit_events WHERE action = 'card.admin.search'"
    )
    assert search["actor_id"] == reads[0].actor_id and search["target_id"] is None
    assert json.loads(search["details"]) == {"by": ["card_number"], "found": 1, "cards": [card["id"]]}
    everything = await db.fetchval("SELECT string_agg(details::text, '') FROM identity.audit_events")
    assert number not in everything and card["card_number"] not in everything and holder_id not in everything


async def test_the_migration_masks_the_numbers_kept_in_clear(
    client: AsyncTestClient[Litestar], citizen_headers: dict[str, str], db: Any
) -> None:
    number = PEOPLE[0].social_security_number
    assert number is not None  # the seeded citizen has a social security record
    card = (await client.post(API, headers=citizen_headers)).json()
    # A row as written before: the number in clear.
    await db.execute(
        "UPDATE card.applications SET attributes = jsonb_set(attributes, '{social_security_number}', $2)"
        " WHERE card_id = $1 AND app_type = 'social_security'",
        uuid.UUID(card["id"]),
        json.dumps(number),
    )
    path = resources.files("card") / "migrations" / "0111_masked_social_security_numbers.sql"
    migration = path.read_text()
    await db.execute(migration)
    await db.execute(migration)  # twice changes nothing
    stored = await db.fetchval(
        "SELECT attributes ->> 'social_security_number' FROM card.applications"
        " WHERE card_id = $1 AND app_type = 'social_security'",
        uuid.UUID(card["id"]),
    )
    assert stored == mask_resident_id(number)
