"""JSON logs carrying the request id, and Prometheus metrics per route.

Both come from one pure ASGI middleware, ``ObservabilityMiddleware``, that sits outside Litestar's
routing: it takes (or makes) the ``X-Request-ID``, binds it to a context variable that the log
formatter reads, returns it in the response header, and records a count and a latency per route
template (never per raw path, so ``/cards/123`` and ``/cards/456`` are one series).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import math
import os
import re
import secrets
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "Metrics",
    "ObservabilityMiddleware",
    "configure_logging",
    "current_request_id",
]

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

# Keys a LogRecord always has; anything else passed in ``extra=`` becomes a JSON field.
_RECORD_KEYS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def current_request_id() -> str | None:
    return _request_id.get()


_PLAIN = frozenset({str, int, bool, type(None)})  # as msgspec and json.dumps both write them
_line = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exception.

    Written by msgspec (compact); an extra value JSON has no plain form for is written as its
    ``str()`` (as ``json.dumps(default=str)`` would), and a line with a container or a
    non-finite number among its extras goes through ``json.dumps`` as before, so every value
    reads back the same."""

    def __init__(self) -> None:
        super().__init__()
        # (second, its text), replaced as one object: log calls from other threads (the sealer,
        # asyncpg's) never see a second paired with another second's text.
        self._stamp: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id.get()
        if request_id:
            entry["request_id"] = request_id
        slow = False
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS and not key.startswith("_"):
                if type(value) in _PLAIN or (isinstance(value, float) and math.isfinite(value)):
                    entry[key] = value
                elif isinstance(value, (list, tuple, dict, float)):
                    entry[key] = value
                    slow = True
                elif isinstance(value, str):  # a str subclass (an enum): its text, as json.dumps
                    entry[key] = str.__str__(value)
                elif isinstance(value, int):
                    entry[key] = int(value)
                else:
                    entry[key] = str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if slow:
            return json.dumps(entry, default=str, ensure_ascii=False)
        return _line.encode(entry).decode()

    def _time(self, created: float) -> str:
        """``datetime.isoformat(timespec="milliseconds")`` in UTC, the seconds made once."""
        fraction, whole = math.modf(created)
        second, micros = int(whole), round(fraction * 1e6)  # as fromtimestamp rounds
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        stamp = self._stamp
        if stamp[0] != second:
            stamp = self._stamp = (
                second,
                dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            )
        return f"{stamp[1]}.{micros // 1000:03d}+00:00"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request_id = _request_id.get()
        prefix = f"[{request_id}] " if request_id else ""
        record.msg = prefix + str(record.msg)
        try:
            return super().format(record)
        finally:
            record.msg = str(record.msg)[len(prefix) :]


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_lines else TextFormatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("pgserver").setLevel(
        logging.WARNING
    )  # it narrates every pg_ctl call at INFO  # our middleware writes the access log


class Metrics:
    """Request metrics; in multi-worker mode (``PROMETHEUS_MULTIPROC_DIR``) summed over workers."""

    def __init__(self, extra: Sequence[CollectorRegistry] = ()) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # The domains' own registries (e.g. the connectors'), for one process; with several
        # workers their metrics are in the shared files like these.
        self.extra = tuple(extra)
        # In multiprocess mode values live in shared files and are read by a collector at scrape time.
        self.registry = CollectorRegistry()
        register_into = None if self.multiprocess else self.registry
        self.requests = Counter(
            "citizen_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=register_into,
        )
        self.latency = Histogram(
            "citizen_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=register_into,
        )
        # Each label set's child, looked up once (``labels()`` costs more than the ``inc``); as
        # many as the metrics themselves hold, so this adds no series and no growth of its own.
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        self.in_flight = Gauge(
            "citizen_http_requests_in_flight",
            "Requests being served",
            registry=register_into,
            multiprocess_mode="livesum",
        )

    def observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        """One request served: counted by status, timed by route."""
        counter = self._counted.get((method, route, status))
        if counter is None:
            counter = self._counted[method, route, status] = self.requests.labels(method, route, str(status))
        timer = self._timed.get((method, route))
        if timer is None:
            timer = self._timed[method, route] = self.latency.labels(method, route)
        counter.inc()
        timer.observe(elapsed)

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return b"".join(generate_latest(r) for r in (self.registry, *self.extra))


class ObservabilityMiddleware:
    """Request id, access log and metrics for every HTTP request."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logging.getLogger("citizen.access")

    async def __call__(self, scope: Mapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = secrets.token_hex(8)
        token = _request_id.set(request_id)
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            route = scope.get("path_template") or ("unmatched" if status == 404 else "other")
            method = scope["method"]
            self.metrics.observe(method, route, status, elapsed)
            if self.log.isEnabledFor(logging.INFO):
                self.log.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed * 1000, 2), "route": route},
                )
            _request_id.reset(token)
