"""``python -m integrations.messages poll``: one pass of the application-status poll.

Against the configured database, Redis and upstreams (``CITIZEN_*``; embedded servers when no
URL is set, as ``citizen`` does). Run it from a scheduler (cron, a systemd timer) every few
minutes; the lead wires it as ``citizen messages poll``.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import redis.asyncio as aioredis

__all__ = ["main", "poll_once"]


async def poll_once(pool: Any, redis: aioredis.Redis, settings: Any, keyring: Any) -> list[str]:
    """One poll with connectors and identity built from ``settings``; lines describing it."""
    from identity.services import IdentityServices
    from identity.wiring import build_core
    from integrations.entrance.subjects import Subjects
    from integrations.messages.applications import poll_applications
    from integrations.wiring import build_connectors

    connectors = build_connectors(
        settings.integrations,
        redis,
        simulator_key=keyring.get("simulator") if settings.is_development else None,
        development=settings.is_development,
        pii_key=keyring.get("pii-encryption"),
        connectors_key=keyring.get("connectors"),
    )
    try:
        core = build_core(
            pool=pool,
            redis=redis,
            settings=settings.identity,
            keyring=keyring,
            registries=connectors,
            development=settings.is_development,
        )
        services = IdentityServices(core)
        subjects = Subjects(lambda: services)

        async def id_number_of(person_id: uuid.UUID) -> str | None:
            return await subjects.id_number(person_id)

        people, changes, failures = await poll_applications(pool, connectors, id_number_of)
    finally:
        await connectors.aclose()
    return [f"polled {people} people: {changes} status changes notified, {failures} upstream failures"]


def main(argv: list[str] | None = None) -> int:
    import argparse

    from backend.db import create_pool
    from backend.keyring import Keyring
    from backend.runtime import migrate_database, resolved_services
    from backend.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m integrations.messages")
    parser.add_argument("action", choices=["poll"], help="poll: notify government application changes")
    parser.parse_args(argv)
    settings = Settings.from_env()
    keyring = Keyring.load(settings)
    with resolved_services(settings) as services:
        resolved = services.settings
        asyncio.run(migrate_database(resolved))

        async def run() -> list[str]:
            assert resolved.database.url is not None and resolved.redis.url is not None
            pool = await create_pool(resolved.database, resolved.database.url.reveal())
            client = aioredis.from_url(resolved.redis.url.reveal())
            try:
                return await poll_once(pool, client, resolved, keyring)
            finally:
                await client.aclose()
                await pool.close()

        sys.stdout.write("\n".join(asyncio.run(run())) + "\n")
    return 0
