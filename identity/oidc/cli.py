"""``citizen keys rotate|status`` and ``citizen clients create|list`` (the provider's CLI work)."""

from __future__ import annotations

from typing import Any

import msgspec

from identity._db import Pool
from identity.oidc.clients import ClientRegistration, ClientStore
from identity.oidc.settings import ALGORITHMS
from identity.oidc.wiring import api_audience_of, key_store

__all__ = ["clients_create", "clients_list", "keys_rotate", "keys_status"]


async def keys_status(pool: Pool, keyring: Any, settings: Any) -> list[str]:
    store = key_store(pool, keyring, settings.oidc)
    await store.ensure()
    lines = []
    for k in await store.status():
        state = "retired" if k["retired_at"] else "active"
        lines.append(
            f"{k['alg']:6} {k['kid']}  {state:7} signs from {k['signs_from']:%Y-%m-%d %H:%M:%S}"
            + (f", published until {k['published_until']:%Y-%m-%d %H:%M:%S}" if k["published_until"] else "")
        )
    return lines


async def keys_rotate(
    pool: Pool, keyring: Any, settings: Any, algs: list[str], delay: int | None
) -> list[str]:
    """A new key per algorithm, published now and signing after the publish delay."""
    store = key_store(pool, keyring, settings.oidc)
    await store.ensure()
    lines = []
    for alg in algs or list(ALGORITHMS):
        key = await store.rotate(alg, delay=delay)
        lines.append(
            f"{alg}: new key {key.kid} published now, signs from {key.signs_from:%Y-%m-%d %H:%M:%S %Z}"
        )
    return lines


async def clients_create(pool: Pool, settings: Any, raw: dict[str, Any]) -> list[str]:
    store = ClientStore(
        pool, cache_ttl=0, development=settings.is_development, api_audience=api_audience_of(settings)
    )
    created = await store.create(msgspec.convert(raw, ClientRegistration))
    lines = [f"client_id      {created.client_id}", f"auth_method    {created.auth_method}"]
    if created.client_secret:
        lines.append(f"client_secret  {created.client_secret}   (shown once; stored hashed)")
    return lines


async def clients_list(pool: Pool, settings: Any) -> list[str]:
    store = ClientStore(
        pool, cache_ttl=0, development=settings.is_development, api_audience=api_audience_of(settings)
    )
    return [
        f"{c.client_id:24} {c.client_type:12} {c.auth_method:20} "
        f"{'disabled' if c.disabled_at else 'active':8} {c.name}"
        for c in await store.list()
    ]
