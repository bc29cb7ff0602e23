"""A gateway with a cold key store and fewer pooled connections than busy terminals.

The key store reads a master key through the pool the first time it needs it. A request that held
a pooled connection while it waited for the key store could wait for ever once every connection
was held that way: the host calls the key store with no connection held.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from cryptography.hazmat.primitives.asymmetric import ec

from backend.db import create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.keys import SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.gateway import running_gateway
from card.terminal.host.fleet import issue_test_cards
from card.terminal.spec import ResultCode, TerminalKind
from mock_terminals.bus import BusReader, Kiosk, SoftwarePsam
from mock_terminals.card import open_personalisation
from mock_terminals.link import TerminalLink
from tests.terminal.conftest import Rig

READERS = 6
KIOSKS = 4


async def test_more_terminals_than_connections_on_a_cold_key_store(
    settings: Settings, keyring: Keyring
) -> None:
    assert settings.database.url is not None
    transport = ec.generate_private_key(ec.SECP256R1())
    # The cards are issued through another key store, so the gateway's own has loaded no master key.
    issuer_pool = await create_pool(settings.database, settings.database.url.reveal())
    try:
        issuer_keys = SoftwareKeyStore(issuer_pool, keyring.get("card-kek"))
        await issuer_keys.ensure_initialised()
        documents = await issue_test_cards(
            issuer_pool, issuer_keys, count=READERS + KIOSKS, balance=10_000,
            issuer_id=CardSettings().issuer_id, transport_key=transport.public_key(),
        )  # fmt: skip
    finally:
        await issuer_pool.close()
    cards = [open_personalisation(d, transport, balance=10_000) for d in documents]

    async with running_gateway(settings, keyring, port=0, pool_max=2) as (gateway, address):
        registry = gateway.host.registry
        readers, kiosks = [], []
        now = dt.datetime.now(dt.UTC)
        for i in range(READERS):
            reg = await registry.register(f"COLD-BUS-{i}", operator="bus-co", kind=TerminalKind.BUS)
            psam = SoftwarePsam(reg.psam_terminal_no, {cards[i].app_serial: cards[i].dpk})
            reader = BusReader(TerminalLink(reg.id, reg.tmk, *address, timeout=60), psam, reg.tmk)
            for _ in range(3):
                reader.tap(cards[i], 100, now)
            await reader.link.sign_on()
            readers.append(reader)
        for i in range(KIOSKS):
            reg = await registry.register(f"COLD-KIOSK-{i}", operator="kiosk-co", kind=TerminalKind.KIOSK)
            kiosk = Kiosk(TerminalLink(reg.id, reg.tmk, *address, timeout=60), reg.psam_terminal_no)
            await kiosk.link.sign_on()
            kiosks.append(kiosk)
        try:
            # Every terminal at once, before the gateway's key store has loaded any master key.
            uploads = [r.upload() for r in readers]
            loads = [k.load(cards[READERS + i], 500) for i, k in enumerate(kiosks)]
            sent = await asyncio.gather(*uploads)
            answers = await asyncio.gather(*loads)
        finally:
            for link in [*(r.link for r in readers), *(k.link for k in kiosks)]:
                await link.close()
    assert sent == [3] * READERS
    assert all(r.counts == {"accepted": 3, "duplicate": 0, "rejected": 0} for r in readers)
    assert [a.result for a in answers] == [ResultCode.OK] * KIOSKS
    assert [c.balance for c in cards[READERS:]] == [10_500] * KIOSKS


async def test_two_fleets_at_once_get_distinct_cards(rig: Rig) -> None:
    """Fleet card numbers follow the count of cards: two fleets issued together must not collide
    (two `citizen-terminals load` runs started at once once failed with a duplicate card key)."""
    first, second = await asyncio.gather(rig.cards(30, balance=100), rig.cards(30, balance=100))
    numbers = {c.card_number for c in first} | {c.card_number for c in second}
    assert len(numbers) == 60
    total = await rig.host.pool.fetchval(
        "SELECT count(*) FROM card.cards WHERE card_number = ANY($1::text[])", sorted(numbers)
    )
    assert total == 60
