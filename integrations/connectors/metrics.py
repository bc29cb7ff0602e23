"""Prometheus metrics of every connector, labelled by connector (and operation).

The metric objects are made once per process. With ``PROMETHEUS_MULTIPROC_DIR`` set (several
workers) their values go to the shared files and the app's ``/metrics`` collects them with the
rest; in a single process they live in ``REGISTRY`` here, rendered by ``render()``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "BREAKER_STATE",
    "CACHE",
    "CALLS",
    "ERRORS",
    "LATENCY",
    "REGISTRY",
    "RETRIES",
    "HitTally",
    "render",
]

REGISTRY = CollectorRegistry()
_into = None if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else REGISTRY

CALLS = Counter(
    "citizen_connector_calls_total",
    "Connector calls by outcome (ok, cached, stale, unavailable, malformed, rejected, breaker_open)",
    ["connector", "operation", "outcome"],
    registry=_into,
)
ERRORS = Counter(
    "citizen_connector_upstream_errors_total",
    "Failed upstream attempts (timeout, transport, status_5xx, status_4xx, malformed)",
    ["connector", "kind"],
    registry=_into,
)
LATENCY = Histogram(
    "citizen_connector_upstream_duration_seconds",
    "Latency of one upstream attempt",
    ["connector", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_into,
)
RETRIES = Counter(
    "citizen_connector_retries_total", "Retried attempts", ["connector", "operation"], registry=_into
)
CACHE = Counter(
    "citizen_connector_cache_total",
    "Cache look-ups (hit, stale, miss)",
    ["connector", "operation", "result"],
    registry=_into,
)
BREAKER_STATE = Gauge(
    "citizen_connector_breaker_state",
    "Circuit breaker state last seen by this process (0 closed, 1 half-open, 2 open)",
    ["connector"],
    registry=_into,
    multiprocess_mode="mostrecent",
)


class HitTally:
    """A connector's cache hits, counted here and added to ``CACHE`` and ``CALLS`` by ``flush``
    (the home does, once a second): a Prometheus ``inc`` takes a lock, which the home would
    otherwise take twice per tile per page."""

    def __init__(self, connector: str) -> None:
        self._connector = connector
        self._pending: dict[str, int] = {}  # by operation

    def add(self, operation: str) -> None:
        self._pending[operation] = self._pending.get(operation, 0) + 1

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for operation, count in pending.items():
            CACHE.labels(self._connector, operation, "hit").inc(count)
            CALLS.labels(self._connector, operation, "cached").inc(count)


def render() -> bytes:
    return generate_latest(REGISTRY)
