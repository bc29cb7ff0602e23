"""The simulators' process: every upstream on one port, each under its own path prefix.

``python -m integrations.simulators [--host H] [--port P]`` (or ``citizen simulators``) binds the
port (0: any free one), and once it accepts connections prints one JSON line on stdout,
``{"population": "http://127.0.0.1:PORT/population", ...}``: each upstream's base URL, which
is what ``CITIZEN_UPSTREAM_<NAME>_URL`` takes. SIGINT/SIGTERM stop it; with ``--watch-stdin`` it
also stops when its standard input closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn
from litestar import Litestar, Router, get, post
from litestar.params import JSONBody

from integrations.credentials import dev_credential
from integrations.simulators.city import bus_router, gov_services_router, utilities_router
from integrations.simulators.faults import ControlPatch, FaultInjector, UpstreamState, UpstreamView
from integrations.simulators.medical import health_router, medical_insurance_router
from integrations.simulators.registries import enterprise_router, population_router
from integrations.simulators.social_security import social_security_router
from payments.channels.simulators import CHANNEL_SIMULATORS

__all__ = ["SIMULATED", "build_app", "serve"]

# The upstreams simulated here, each with the router that serves it under its name.
_ROUTERS: dict[str, Callable[[UpstreamState, str], Router]] = {
    "population": population_router,
    "enterprise": enterprise_router,
    "social_security": social_security_router,
    "medical_insurance": medical_insurance_router,
    "health": health_router,
    "bus": bus_router,
    "gov_services": gov_services_router,
    "utilities": utilities_router,
    **CHANNEL_SIMULATORS,  # the payment channels (payments.channels.simulators)
}
SIMULATED: tuple[str, ...] = tuple(_ROUTERS)


def _control_router(name: str, state: UpstreamState) -> Router:
    # One router per upstream: Litestar prefers a static segment ("/population") over a path
    # parameter and does not backtrack, so "/{upstream}/_control" would never be reached.
    @get("/", operation_id=f"GetControls_{name}")
    async def show() -> UpstreamView:
        return state.view()

    @post("/", operation_id=f"SetControls_{name}", status_code=200)
    async def change(data: JSONBody[ControlPatch]) -> UpstreamView:
        state.patch(data)
        return state.view()

    @post("/reset", operation_id=f"ResetControls_{name}", status_code=200)
    async def reset() -> UpstreamView:
        state.reset()
        return state.view()

    return Router(f"/{name}/_control", route_handlers=[show, change, reset])


def _all_controls_router(states: dict[str, UpstreamState]) -> Router:
    @get("/", operation_id="GetAllControls")
    async def show_all() -> dict[str, UpstreamView]:
        return {name: state.view() for name, state in states.items()}

    @post("/reset", operation_id="ResetAllControls", status_code=200)
    async def reset_all() -> dict[str, UpstreamView]:
        for state in states.values():
            state.reset()
        return {name: state.view() for name, state in states.items()}

    return Router("/_control", route_handlers=[show_all, reset_all])


def build_app(simulator_key: bytes) -> Any:
    """The ASGI app of every simulator: Litestar routes behind the fault-injecting middleware."""
    states = {name: UpstreamState(name) for name in SIMULATED}
    routers = [
        *(router(states[name], dev_credential(simulator_key, name)) for name, router in _ROUTERS.items()),
        _all_controls_router(states),
        *(_control_router(name, state) for name, state in states.items()),
    ]
    app = Litestar(route_handlers=routers, openapi_config=None, debug=False, logging_config=None)
    return FaultInjector(app, states)


async def serve(
    simulator_key: bytes, host: str = "127.0.0.1", port: int = 0, *, watch_stdin: bool = False
) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        build_app(simulator_key),
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task  # the error that stopped it
            return
        await asyncio.sleep(0.01)
    address = f"[{host}]" if ":" in host else host
    urls = {name: f"http://{address}:{bound}/{name}" for name in SIMULATED}
    sys.stdout.write(json.dumps(urls) + "\n")
    sys.stdout.flush()
    if watch_stdin:

        def watch() -> None:
            sys.stdin.buffer.read()  # returns at end of file: the parent closed the pipe or died
            server.should_exit = True

        threading.Thread(target=watch, name="stdin-watch", daemon=True).start()
    try:
        await task
    finally:
        sock.close()
