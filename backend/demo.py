"""``citizen demo``: the demo data, loaded by each domain's own idempotent loader."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from backend.db import Pool
from backend.keyring import Keyring
from backend.settings import Settings
from backend.web.pages import load_web_demo
from card.demo import load_card_demo
from identity.demo import load_identity_demo
from identity.oidc.demo import load_oidc_demo
from payments.demo import load_payments_demo

__all__ = ["DEMO_LOADERS", "load_demo"]

DemoLoader = Callable[[Pool, aioredis.Redis, Settings, Keyring], Awaitable[list[str]]]

# Filled as domains land, in dependency order; each returns lines describing what it ensured.
DEMO_LOADERS: list[tuple[str, DemoLoader]] = [
    ("identity", load_identity_demo),
    ("oidc", load_oidc_demo),  # the city app and two partner clients, with their secrets
    ("card", load_card_demo),
    ("payments", load_payments_demo),  # after card: the demo citizen's card tops up and rides
    ("web", load_web_demo),
]


async def load_demo(pool: Pool, redis: aioredis.Redis, settings: Settings, keyring: Keyring) -> list[str]:
    lines: list[str] = []
    for name, loader in DEMO_LOADERS:
        lines += [f"{name}: {line}" for line in await loader(pool, redis, settings, keyring)]
    return lines
