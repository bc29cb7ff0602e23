"""Connectors built by hand, with policies a test can reason about (small backoff, counted breaker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.runtime import Services
from backend.settings import Settings
from integrations.connectors import (
    ConnectorPolicy,
    EnterpriseRegistryConnector,
    PopulationRegistryConnector,
)
from integrations.connectors.base import Connector
from integrations.connectors.social_security import SocialSecurityConnector
from integrations.credentials import dev_credential
from integrations.settings import EntranceSettings
from integrations.simulators.control import SimulatorControl
from tests.integrations.citizens import Citizens

FAST = ConnectorPolicy(
    budget=5.0,
    attempts=3,
    backoff_base=0.001,
    backoff_cap=0.005,
    breaker_threshold=3,
    breaker_window=3600,
    breaker_cooldown=3600,
)


@pytest.fixture(scope="session")
def simulator_key(services: Services) -> bytes:
    return Keyring.load(services.settings, names=("simulator",)).get("simulator")


@pytest.fixture(scope="session")
def pii_key(services: Services) -> bytes:
    return Keyring.load(services.settings, names=("pii-encryption",)).get("pii-encryption")


@pytest_asyncio.fixture
async def connect(
    upstreams: SimulatorControl, redis_client: aioredis.Redis, simulator_key: bytes, pii_key: bytes
) -> AsyncIterator[Callable[..., Any]]:
    """``connect("enterprise", budget=0.2, ...)``: a connector to that simulator, closed after the test."""
    opened: list[Connector] = []

    def make(
        name: str, *, credential: str | None = None, pii_key: bytes | None = pii_key, **policy: Any
    ) -> Any:
        secret = credential if credential is not None else dev_credential(simulator_key, name)
        common: dict[str, Any] = {
            "base_url": upstreams.urls[name],
            "redis": redis_client,
            "policy": msgspec.structs.replace(FAST, **policy),
            "pii_key": pii_key,
        }
        connector: Connector
        if name == "population":
            connector = PopulationRegistryConnector(client_secret=secret, **common)
        elif name == "enterprise":
            connector = EnterpriseRegistryConnector(api_key=secret, **common)
        else:
            connector = SocialSecurityConnector(signing_key=secret, **common)
        opened.append(connector)
        return connector

    yield make
    for connector in opened:
        await connector.aclose()


# --- the entrance: the app against the simulators, with budgets and a breaker tests can drive ---

ENTRANCE = EntranceSettings(tile_budget=0.5, page_budget=1.0)


def entrance_app_settings(
    settings: Settings, urls: dict[str, str], *, cooldown: float = 3600.0, threshold: int = 3
) -> Settings:
    integrations = msgspec.structs.replace(
        settings.integrations.with_urls(urls),
        entrance=ENTRANCE,
        breaker_threshold=threshold,
        breaker_cooldown=cooldown,
    )
    return settings.replace(integrations=integrations)


@pytest.fixture
def breaker_cooldown() -> float:
    """Seconds the breakers stay open (override with 0 to drive a recovery by counts)."""
    return 3600.0


@pytest.fixture
def entrance_settings(settings: Settings, upstreams: SimulatorControl, breaker_cooldown: float) -> Settings:
    return entrance_app_settings(settings, upstreams.urls, cooldown=breaker_cooldown)


@pytest_asyncio.fixture
async def entrance_client(
    entrance_settings: Settings, keyring: Keyring
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(entrance_settings, keyring)) as test_client:
        yield test_client


@pytest.fixture
def citizens(entrance_client: AsyncTestClient[Litestar]) -> Citizens:
    return Citizens(entrance_client)
