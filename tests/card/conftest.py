"""Card fixtures: a pool on the test's own database, the software key store, the card service; for the
API tests (each module brings its ``app``), a verified citizen's and a support operator's headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db import Pool, create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.applications import HolderDetails
from card.audit import Actor
from card.keys import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService
from card.settings import CardSettings
from identity.admin.operators import create_operator
from identity.passwords import PasswordHasher
from integrations.simulators.seed import PEOPLE
from tests.identity.conftest import Flows, bearer


@pytest_asyncio.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    assert settings.database.url is not None
    created = await create_pool(settings.database, settings.database.url.reveal())
    yield created
    await created.close()


@pytest_asyncio.fixture
async def keys(pool: Pool, keyring: Keyring) -> SoftwareKeyStore:
    store = SoftwareKeyStore(pool, keyring.get("card-kek"))
    await store.ensure_initialised()
    return store


@pytest.fixture
def card_settings() -> CardSettings:
    return CardSettings()


@pytest.fixture
def service(pool: Pool, keys: SoftwareKeyStore, card_settings: CardSettings) -> CardService:
    return CardService(pool, keys, card_settings, ledger=PaymentsEpurseLedger())


@pytest.fixture
def holder() -> HolderDetails:
    return HolderDetails(person_id=uuid.uuid4(), loa=2, social_security_number="440300199001011234")


@pytest.fixture
def citizen(holder: HolderDetails) -> Actor:
    return Actor(kind="person", id=str(holder.person_id))


OPERATOR = Actor(kind="operator", id=str(uuid.UUID(int=1)))


async def operator_headers(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, role: str
) -> dict[str, str]:
    """Sign in a new operator with ``role``; their bearer headers."""
    username = f"card-{role.replace('_', '-')}"
    await create_operator(
        db,
        PasswordHasher(settings.identity),
        username=username,
        display_name=username,
        roles=[role],
        password="a long operator password 1",
    )
    response = await client.post(
        "/api/v1/identity/operator-sessions",
        json={"username": username, "password": "a long operator password 1"},
    )
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


@pytest_asyncio.fixture
async def citizen_headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    session = await Flows(client).verified(PEOPLE[0])
    return bearer(session["token"])


@pytest_asyncio.fixture
async def operator(client: AsyncTestClient[Litestar], settings: Settings, db: Any) -> dict[str, str]:
    return await operator_headers(client, settings, db, "support")
