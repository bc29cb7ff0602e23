"""``citizen keys`` / ``citizen clients`` and the demo clients."""

from __future__ import annotations

from typing import Any

import asyncpg
import redis.asyncio as aioredis

from backend.cli import build_parser
from backend.cli._identity import client_registration
from backend.keyring import Keyring
from backend.settings import Settings
from identity.oidc import cli as oidc_cli
from identity.oidc.demo import load_oidc_demo


async def test_keys_clients_and_demo(
    settings: Settings, keyring: Keyring, database_url: str, redis_client: aioredis.Redis
) -> None:
    args = build_parser().parse_args(["keys", "rotate", "--alg", "ES256", "--delay", "60"])
    assert args.action == "rotate" and args.alg == ["ES256"]
    assert build_parser().parse_args(["clients", "create", "--public", "--redirect-uri", "x:/cb"]).public
    spa = build_parser().parse_args(
        ["clients", "create", "--public", "--redirect-uri", "https://spa.example/cb", "--web-origin",
         "https://spa.example", "--web-origin", "https://m.spa.example"]
    )  # fmt: skip
    assert client_registration(spa)["web_origins"] == ["https://spa.example", "https://m.spa.example"]
    pool: Any = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        status = await oidc_cli.keys_status(pool, keyring, settings)
        assert len(status) == 3 and all("active" in line for line in status)
        rotated = await oidc_cli.keys_rotate(pool, keyring, settings, ["ES256"], 60)
        assert rotated[0].startswith("ES256: new key")
        assert sum("retired" in line for line in await oidc_cli.keys_status(pool, keyring, settings)) == 1
        created = await oidc_cli.clients_create(
            pool, settings, {"name": "CLI", "redirect_uris": ["https://a.example/cb"]}
        )
        assert any(line.startswith("client_secret") for line in created)
        await oidc_cli.clients_create(pool, settings, client_registration(spa))
        stored = await pool.fetch("SELECT origin FROM identity.oidc_client_web_origins ORDER BY origin")
        assert [r["origin"] for r in stored] == ["https://m.spa.example", "https://spa.example"]
        first = await load_oidc_demo(pool, redis_client, settings, keyring)
        again = await load_oidc_demo(pool, redis_client, settings, keyring)
        assert first == again  # idempotent, and the same secrets are printed every time
        assert any("partner-health" in line and "secret demo-" in line for line in first)
        assert any("city-app" in line and "PKCE" in line for line in first)
        listed = await oidc_cli.clients_list(pool, settings)
        assert len(listed) == 5
    finally:
        await pool.close()
