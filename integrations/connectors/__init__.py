"""HTTP connectors to the city's upstream services, on one resilient framework (``base``)."""

from __future__ import annotations

from integrations.connectors.auth import ApiKey, Auth, ClientCredentials, SignedRequests
from integrations.connectors.base import Connector, ConnectorPolicy, Fetched, Operation
from integrations.connectors.breaker import BreakerState, CircuitBreaker
from integrations.connectors.cache import CachePolicy
from integrations.connectors.registries import EnterpriseRegistryConnector, PopulationRegistryConnector

__all__ = [
    "ApiKey",
    "Auth",
    "BreakerState",
    "CachePolicy",
    "CircuitBreaker",
    "ClientCredentials",
    "Connector",
    "ConnectorPolicy",
    "EnterpriseRegistryConnector",
    "Fetched",
    "Operation",
    "PopulationRegistryConnector",
    "SignedRequests",
]
