"""Driving the channel simulators' controls from tests (the customer paying, faults, notifications)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from payments.channels.config import CHANNEL_NAMES


async def channel_reset(client: httpx.AsyncClient, urls: Mapping[str, str]) -> None:
    for name in CHANNEL_NAMES:
        (await client.post(f"{urls[name]}/_control/reset")).raise_for_status()
        (
            await client.post(f"{urls[name]}/_control/channel", json={"notify_delays": [0.0]})
        ).raise_for_status()


async def channel_pay(client: httpx.AsyncClient, url: str, order_no: str, *, fail: bool = False) -> None:
    response = await client.post(f"{url}/_control/pay/{order_no}", json={"fail": fail})
    response.raise_for_status()
    assert response.json()["ok"], response.text


async def notifications_of(client: httpx.AsyncClient, url: str, order_no: str) -> list[dict[str, Any]]:
    response = await client.get(f"{url}/_control/notifications")
    response.raise_for_status()
    return [d for d in response.json() if d["order_no"] == order_no]


async def channel_faults(client: httpx.AsyncClient, url: str, **faults: Any) -> None:
    (await client.post(f"{url}/_control/channel", json=faults)).raise_for_status()
