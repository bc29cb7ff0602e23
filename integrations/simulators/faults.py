"""Fault controls of the simulated upstreams, and the ASGI middleware that applies them.

Each upstream lives under its own path prefix (``/population/...``) and has one
``UpstreamState``: its fault settings and a count of the requests it received, by path. The
controls are served by every upstream at ``/<name>/_control``:

- ``GET``: the settings and the request counts;
- ``POST`` with a JSON patch of ``FaultSettings`` (only the fields given change);
- ``POST /<name>/_control/reset``: default settings, zero counts, issued tokens forgotten.

``/_control`` and ``/_control/reset`` do the same for every upstream at once.

``outage`` answers 503 to every request (the token endpoint too); the other faults apply to data
requests only: ``latency_ms`` waits before answering, ``fail_next`` / ``error_rate`` answer 500,
``malformed_next`` / ``malformed_rate`` replace a good answer with one that breaks its contract.
The ``*_next`` counters are deterministic, for tests; the rates draw from a seeded generator.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

__all__ = ["ControlPatch", "FaultInjector", "FaultSettings", "UpstreamState", "UpstreamView"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Answers that a client must reject: wrong types, missing fields, not JSON, cut short.
_MALFORMED: tuple[bytes, ...] = (
    b'{"status": 42, "person": "nobody"}',
    b'{"unexpected": true}',
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"status": "match", "person": {"birth_da',
    b"[]",
)


class FaultSettings(msgspec.Struct, kw_only=True):
    latency_ms: int = 0
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    outage: bool = False
    fail_next: int = 0
    malformed_next: int = 0
    seed: int = 0
    token_ttl: int = 300  # seconds an OAuth access token lives (where the upstream issues them)


class ControlPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    latency_ms: int | None = None
    error_rate: float | None = None
    malformed_rate: float | None = None
    outage: bool | None = None
    fail_next: int | None = None
    malformed_next: int | None = None
    seed: int | None = None
    token_ttl: int | None = None


class UpstreamView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    faults: FaultSettings
    requests: dict[str, int]  # by path, every request but the controls
    data_requests: int  # requests the faults apply to (not the token endpoint)


class UpstreamState:
    """One upstream's faults, request counts and issued tokens (one process, one event loop)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.faults = FaultSettings()
        self.requests: collections.Counter[str] = collections.Counter()
        self.data_requests = 0
        self.tokens: dict[str, float] = {}  # access token -> expiry (loop time)
        self.store: dict[str, Any] = {}  # what the upstream's writes changed (bookings, payments)
        self.rng = random.Random(0)  # noqa: S311 - fault injection, not security

    def reset(self) -> None:
        self.faults = FaultSettings()
        self.requests.clear()
        self.data_requests = 0
        self.tokens.clear()
        self.store.clear()
        self.rng = random.Random(0)  # noqa: S311 - fault injection, not security

    def patch(self, patch: ControlPatch) -> None:
        changes = {f: v for f in patch.__struct_fields__ if (v := getattr(patch, f)) is not None}
        self.faults = msgspec.structs.replace(self.faults, **changes)
        if "seed" in changes:
            self.rng = random.Random(self.faults.seed)  # noqa: S311

    def view(self) -> UpstreamView:
        return UpstreamView(
            name=self.name,
            faults=self.faults,
            requests=dict(self.requests),
            data_requests=self.data_requests,
        )

    def take_error(self) -> bool:
        faults = self.faults
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return True
        return faults.error_rate > 0 and self.rng.random() < faults.error_rate

    def take_malformed(self) -> bool:
        faults = self.faults
        if faults.malformed_next > 0:
            faults.malformed_next -= 1
            return True
        return faults.malformed_rate > 0 and self.rng.random() < faults.malformed_rate


async def _json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class FaultInjector:
    """Pure ASGI middleware in front of the simulators' Litestar app."""

    def __init__(self, app: Any, states: dict[str, UpstreamState]) -> None:
        self.app = app
        self.states = states

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        parts = path.split("/", 3)
        state = self.states.get(parts[1]) if len(parts) > 2 else None
        if state is None or parts[2] == "_control":
            await self.app(scope, receive, send)
            return
        state.requests[path] += 1
        if state.faults.outage:
            await _json(send, 503, b'{"error": "service_unavailable"}')
            return
        if path.endswith("/oauth/token"):
            await self.app(scope, receive, send)
            return
        state.data_requests += 1
        if state.faults.latency_ms > 0:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        if state.take_error():
            await _json(send, 500, b'{"error": "internal_error"}')
            return
        if not state.take_malformed():
            await self.app(scope, receive, send)
            return
        garbage = state.rng.choice(_MALFORMED)

        async def replace_body(message: MutableMapping[str, Any]) -> None:
            # The real answer is swallowed; the garbage goes out when it is complete.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await _json(send, 200, garbage)

        await self.app(scope, receive, replace_body)
