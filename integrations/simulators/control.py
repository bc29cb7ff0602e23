"""A client for the simulators' fault controls (tests, the demo, benches)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
import msgspec

from integrations.simulators.faults import UpstreamView

__all__ = ["SimulatorControl"]

_view = msgspec.json.Decoder(UpstreamView)


class SimulatorControl:
    """``await control.set("population", outage=True)``; ``await control.data_requests("enterprise")``."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)
        self._client = httpx.AsyncClient(timeout=10.0)

    async def __aenter__(self) -> SimulatorControl:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def set(self, upstream: str, **faults: Any) -> UpstreamView:
        response = await self._client.post(f"{self.urls[upstream]}/_control", json=faults)
        response.raise_for_status()
        return _view.decode(response.content)

    async def view(self, upstream: str) -> UpstreamView:
        response = await self._client.get(f"{self.urls[upstream]}/_control")
        response.raise_for_status()
        return _view.decode(response.content)

    async def data_requests(self, upstream: str) -> int:
        """Requests the upstream answered with data (or a fault), the token endpoint excluded."""
        return (await self.view(upstream)).data_requests

    async def reset(self, *upstreams: str) -> None:
        for upstream in upstreams or tuple(self.urls):
            response = await self._client.post(f"{self.urls[upstream]}/_control/reset")
            response.raise_for_status()
