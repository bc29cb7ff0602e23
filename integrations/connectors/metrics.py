"""Prometheus metrics of every connector, labelled by connector (and operation).

The metric objects are made once per process. With ``PROMETHEUS_MULTIPROC_DIR`` set (several
workers) their values go to the shared files and the app's ``/metrics`` collects them with the
rest; in a single process they live in ``REGISTRY`` here, rendered by ``render()``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["BREAKER_STATE", "CACHE", "CALLS", "ERRORS", "LATENCY", "REGISTRY", "RETRIES", "render"]

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


def render() -> bytes:
    return generate_latest(REGISTRY)
