"""Baseline apps for the HTTP benchmarks: the framework's own limit on this machine."""

from __future__ import annotations

from litestar import Litestar, get


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, str]:
    return {"status": "ok"}


@get("/healthz", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


bare_app = Litestar([bare, healthz], logging_config=None)
