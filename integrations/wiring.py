"""The connectors of one app process, built from the settings in the app's lifespan.

``backend/wiring.py`` adds ``IntegrationsRuntime(resources).parts()``: a lifespan that opens the
connectors once Redis is open (and closes them), and the named dependencies
``population_registry``, ``enterprise_registry`` and ``connectors``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis.asyncio as aioredis
from litestar.di import Provide

from integrations.connectors.base import Connector, ConnectorOptions, ConnectorPolicy
from integrations.connectors.cache import GetBatcher
from integrations.connectors.city import BusConnector, GovServicesConnector, UtilitiesConnector
from integrations.connectors.idempotency import IdempotencyKeys
from integrations.connectors.medical import HealthConnector, MedicalInsuranceConnector
from integrations.connectors.registries import EnterpriseRegistryConnector, PopulationRegistryConnector
from integrations.connectors.social_security import SocialSecurityConnector
from integrations.credentials import dev_credential
from integrations.settings import IntegrationsSettings

__all__ = ["ConfigurationError", "Connectors", "IntegrationsRuntime", "build_connectors"]


class ConfigurationError(RuntimeError):
    """An upstream has a URL but no credential, or the connectors have no key, in production."""


class Connectors:
    """Every connector of this process; ``aclose()`` closes their HTTP pools."""

    def __init__(  # noqa: PLR0917 - one per upstream
        self,
        population: PopulationRegistryConnector,
        enterprise: EnterpriseRegistryConnector,
        social_security: SocialSecurityConnector,
        medical_insurance: MedicalInsuranceConnector,
        health: HealthConnector,
        bus: BusConnector,
        gov_services: GovServicesConnector,
        utilities: UtilitiesConnector,
        *,
        idempotency: IdempotencyKeys,
    ) -> None:
        self.population = population
        self.enterprise = enterprise
        self.social_security = social_security
        self.medical_insurance = medical_insurance
        self.health = health
        self.bus = bus
        self.gov_services = gov_services
        self.utilities = utilities
        self.idempotency = idempotency  # the Idempotency-Keys sent upstream for our callers

    @property
    def all(self) -> tuple[Connector, ...]:
        return (
            self.population,
            self.enterprise,
            self.social_security,
            self.medical_insurance,
            self.health,
            self.bus,
            self.gov_services,
            self.utilities,
        )

    async def aclose(self) -> None:
        for connector in self.all:
            await connector.aclose()


def build_connectors(
    settings: IntegrationsSettings,
    redis: aioredis.Redis,
    *,
    simulator_key: bytes | None,
    development: bool,
    pii_key: bytes | None = None,
    connectors_key: bytes | None = None,
) -> Connectors:
    """``simulator_key``: outside production, unset credentials derive from it (the simulators').
    ``pii_key``: the keyring's ``pii-encryption``, sealing personal data in the cache entries of
    the registries and the personal upstreams (without it those are not cached).
    ``connectors_key``: the keyring's ``connectors``, the HMAC key of the cache's Redis keys and
    of the Idempotency-Keys sent upstream (``IdempotencyKeys``). It is required outside
    development: under an empty or known key, a cache key is a plain hash of an ID number, found
    again by hashing every candidate. In development it may derive from ``simulator_key`` (tools
    and tests that build connectors without the keyring)."""

    def policy(name: str) -> ConnectorPolicy:
        return ConnectorPolicy(
            budget=settings.upstream(name).budget,
            breaker_threshold=settings.breaker_threshold,
            breaker_window=settings.breaker_window,
            breaker_cooldown=settings.breaker_cooldown,
        )

    def credential(name: str) -> str:
        upstream = settings.upstream(name)
        if upstream.credential is not None:
            return upstream.credential.reveal()
        if development and simulator_key is not None:
            return dev_credential(simulator_key, name)
        if upstream.url:
            raise ConfigurationError(f"CITIZEN_UPSTREAM_{name.upper()}_CREDENTIAL: required in production")
        return ""

    if connectors_key is None and development and simulator_key is not None:
        connectors_key = dev_credential(simulator_key, "cache-keys").encode()
    if not connectors_key:
        raise ConfigurationError("CITIZEN_KEY_CONNECTORS: the connectors' cache keys need a secret key")
    cache_secret = _subkey(connectors_key, "cache-keys")
    batcher = GetBatcher(redis)  # the cache reads of every connector, one MGET per loop turn

    def common(name: str) -> ConnectorOptions:
        return {
            "base_url": settings.upstream(name).url,
            "redis": redis,
            "policy": policy(name),
            "cache_secret": cache_secret,
            "batcher": batcher,
            "pii_key": pii_key,
        }

    return Connectors(
        population=PopulationRegistryConnector(
            base_url=settings.upstream("population").url,
            client_secret=credential("population"),
            redis=redis,
            policy=policy("population"),
        ),
        enterprise=EnterpriseRegistryConnector(api_key=credential("enterprise"), **common("enterprise")),
        social_security=SocialSecurityConnector(
            signing_key=credential("social_security"), **common("social_security")
        ),
        medical_insurance=MedicalInsuranceConnector(
            signing_key=credential("medical_insurance"), **common("medical_insurance")
        ),
        health=HealthConnector(client_secret=credential("health"), **common("health")),
        bus=BusConnector(api_key=credential("bus"), **common("bus")),
        gov_services=GovServicesConnector(signing_key=credential("gov_services"), **common("gov_services")),
        utilities=UtilitiesConnector(api_key=credential("utilities"), **common("utilities")),
        idempotency=IdempotencyKeys(redis, _subkey(connectors_key, "idempotency-keys")),
    )


def _subkey(key: bytes, purpose: str) -> bytes:
    """One key per use of the keyring's ``connectors`` key."""
    return hmac.new(key, f"citizen-connectors:{purpose}".encode(), hashlib.sha256).digest()


class _Resources(Protocol):  # backend.app.Resources, without importing the shell
    @property
    def settings(self) -> Any: ...
    @property
    def keyring(self) -> Any: ...
    @property
    def redis(self) -> aioredis.Redis: ...


class IntegrationsRuntime:
    def __init__(self, resources: _Resources) -> None:
        self._resources = resources
        self._connectors: Connectors | None = None

    @property
    def connectors(self) -> Connectors:
        if self._connectors is None:
            raise RuntimeError("the connectors are not open (outside the app's lifespan)")
        return self._connectors

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        resources = self._resources
        settings = resources.settings
        self._connectors = build_connectors(
            settings.integrations,
            resources.redis,
            simulator_key=resources.keyring.get("simulator") if settings.is_development else None,
            development=settings.is_development,
            pii_key=resources.keyring.get("pii-encryption"),
            connectors_key=resources.keyring.get("connectors"),
        )
        try:
            yield
        finally:
            connectors, self._connectors = self._connectors, None
            await connectors.aclose()

    def dependencies(self) -> dict[str, Provide]:
        return {
            "connectors": Provide(lambda: self.connectors, sync_to_thread=False),
            "population_registry": Provide(lambda: self.connectors.population, sync_to_thread=False),
            "enterprise_registry": Provide(lambda: self.connectors.enterprise, sync_to_thread=False),
        }
