"""``citizen demo`` for card (idempotent, after identity's): the demo citizen's card on a demo phone."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from card._db import Pool
from card.applications import HolderDetails
from card.audit import SYSTEM
from card.directory import ConnectorDirectory
from card.lifecycle import repo
from card.wiring import build_card_services
from identity.crypto import BlindIndex
from integrations.simulators.seed import DEMO_CITIZEN
from integrations.wiring import build_connectors

__all__ = ["load_card_demo"]


async def load_card_demo(pool: Pool, redis: aioredis.Redis, settings: Any, keyring: Any) -> list[str]:
    if not settings.is_development:
        return ["skipped: the demo card is only made outside production"]
    # With the upstreams running (`citizen serve --demo` starts the simulators first), the social
    # security and health applications are read through the connectors, as in the app; without
    # them they stay pending and the app completes them on the citizen's next look at the card.
    upstreams = settings.integrations
    if not (upstreams.upstream("social_security").url and upstreams.upstream("health").url):
        return await _demo_card(pool, settings, keyring, None)
    connectors = build_connectors(upstreams, redis, simulator_key=keyring.get("simulator"), development=True)
    try:
        return await _demo_card(pool, settings, keyring, connectors)
    finally:
        await connectors.aclose()


async def _demo_card(pool: Pool, settings: Any, keyring: Any, connectors: Any) -> list[str]:
    async def demo_id_number(_person_id: Any) -> str:
        return DEMO_CITIZEN.id_number

    directory = ConnectorDirectory(lambda: connectors, demo_id_number) if connectors is not None else None
    services = await build_card_services(pool, settings, keyring, directory=directory)
    index = BlindIndex(keyring.get("pii-index"))
    account = await pool.fetchrow(
        "SELECT id, level FROM identity.accounts WHERE id_number_index = $1 AND status <> 'deactivated'",
        index.id_number(DEMO_CITIZEN.id_number),
    )
    if account is None:
        return ["skipped: no demo citizen (identity's demo loader makes one)"]
    holder = HolderDetails(
        person_id=account["id"],
        loa=account["level"],
        social_security_number=DEMO_CITIZEN.social_security_number,
    )
    view = await services.cards.ensure_card(holder, SYSTEM)
    live = view.id
    lines = [
        f"card {view.card_number} ({view.status}) for {DEMO_CITIZEN.name}, applications: "
        + ", ".join(f"{a.type} {a.status}" for a in view.applications)
    ]
    if view.status == "active" and view.device is None:
        activation = await services.devices.demo_activate(live, SYSTEM)
        lines.append(f"activated on the demo phone until {activation.expires_at:%Y-%m-%d %H:%M}Z")
    elif view.device is not None:
        lines.append(
            f"on device '{view.device.label}' until {view.device.authorisation_expires_at:%Y-%m-%d %H:%M}Z"
        )
    lines.append("QR of the demo phone: GET /api/v1/cards/me/demo-phone/qr?kind=svg (as the demo citizen)")
    async with pool.acquire() as connection:
        ref = await repo.key_ref_for(connection, live, services.settings)
    lines.append(f"e-purse keys: version {ref.key_version}, application serial {ref.app_serial.hex()}")
    return lines
