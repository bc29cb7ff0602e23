"""Connectors built by hand, with policies a test can reason about (small backoff, counted breaker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from backend.keyring import Keyring
from backend.runtime import Services
from integrations.connectors import (
    ConnectorPolicy,
    EnterpriseRegistryConnector,
    PopulationRegistryConnector,
)
from integrations.connectors.base import Connector
from integrations.connectors.social_security import SocialSecurityConnector
from integrations.credentials import dev_credential
from integrations.simulators.control import SimulatorControl

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


@pytest_asyncio.fixture
async def connect(
    upstreams: SimulatorControl, redis_client: aioredis.Redis, simulator_key: bytes
) -> AsyncIterator[Callable[..., Any]]:
    """``connect("enterprise", budget=0.2, ...)``: a connector to that simulator, closed after the test."""
    opened: list[Connector] = []

    def make(name: str, *, credential: str | None = None, **policy: Any) -> Any:
        secret = credential if credential is not None else dev_credential(simulator_key, name)
        common: dict[str, Any] = {
            "base_url": upstreams.urls[name],
            "redis": redis_client,
            "policy": msgspec.structs.replace(FAST, **policy),
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
