"""Card fixtures: a pool on the test's own database, the software key store, the card service; for the
API tests, the app on the simulators, a verified citizen's and a support operator's headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db import Pool, create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.applications import HolderDetails
from card.audit import Actor
from card.keys import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService
from card.settings import CardSettings
from integrations.simulators.seed import PEOPLE
from tests.identity.conftest import Flows, bearer
from tests.identity.conftest import operator_headers as signed_in_operator


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
    """Sign in a new operator ``card-<role>`` with ``role``; their bearer headers."""
    return await signed_in_operator(client, settings, db, role, prefix="card")


@pytest.fixture
def app(settings_with_upstreams: Settings, keyring: Keyring) -> Litestar:
    """The app on the registry simulators (the root conftest's ``client`` serves it)."""
    return create_app(settings_with_upstreams, keyring)


@pytest_asyncio.fixture
async def citizen_headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    session = await Flows(client).verified(PEOPLE[0])
    return bearer(session["token"])


@pytest_asyncio.fixture
async def operator(client: AsyncTestClient[Litestar], settings: Settings, db: Any) -> dict[str, str]:
    return await operator_headers(client, settings, db, "support")
