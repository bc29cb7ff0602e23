"""The operators' card API: who may unfreeze what, personal data masked in every view, every read
of a card audited (actor and card, never personal data)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings
from identity.audit import entries_for
from tests.card.conftest import operator_headers

API = "/api/v1/cards"
ADMIN = "/api/v1/admin/cards"


@pytest.fixture
def app(settings_with_upstreams: Settings, keyring: Keyring) -> Litestar:
    return create_app(settings_with_upstreams, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


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
