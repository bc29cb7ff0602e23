"""Card fixtures: a pool on the test's own database, the software key store, the card service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from backend.db import Pool, create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.applications import HolderDetails
from card.audit import Actor
from card.keys import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.service import CardService
from card.settings import CardSettings


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
