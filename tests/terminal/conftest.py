"""Fixtures: a real gateway (in this process, on a free port) over the test's own database."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec

from backend.keyring import Keyring
from backend.settings import Settings
from card.blacklist import EntryKind, ListEntry, change_txn
from card.settings import CardSettings
from card.terminal.gateway import Gateway, running_gateway
from card.terminal.host.fleet import issue_test_cards
from card.terminal.host.registry import Registration
from card.terminal.host.service import TerminalHost
from card.terminal.spec import TerminalKind
from mock_terminals.bus import BusReader, Kiosk, SoftwarePsam
from mock_terminals.card import SoftwareCard, open_personalisation
from mock_terminals.link import TerminalLink


@dataclass
class Rig:
    gateway: Gateway
    host: TerminalHost
    address: tuple[str, int]
    transport: ec.EllipticCurvePrivateKey
    links: list[TerminalLink]

    async def register(
        self, terminal_id: str, kind: TerminalKind = TerminalKind.BUS, operator: str = "bus-co"
    ) -> Registration:
        return await self.host.registry.register(terminal_id, operator=operator, kind=kind, line="B1")

    def link(self, registration: Registration) -> TerminalLink:
        link = TerminalLink(registration.id, registration.tmk, *self.address, timeout=10, retry_delay=0.05)
        self.links.append(link)
        return link

    async def cards(self, count: int, balance: int = 10_000) -> list[SoftwareCard]:
        documents = await issue_test_cards(
            self.host.pool, self.host.keys, count=count, balance=balance,
            issuer_id=CardSettings().issuer_id, transport_key=self.transport.public_key(),
        )  # fmt: skip
        return [open_personalisation(d, self.transport, balance=balance) for d in documents]

    async def bus(self, terminal_id: str, cards: list[SoftwareCard]) -> BusReader:
        registration = await self.register(terminal_id)
        psam = SoftwarePsam(registration.psam_terminal_no, {c.app_serial: c.dpk for c in cards})
        return BusReader(self.link(registration), psam, registration.tmk)

    async def blacklist(self, adds: Sequence[int] = (), removes: Sequence[int] = ()) -> int:
        """List (``adds``) and delist (``removes``) card numbers in one change; its version."""
        async with self.host.pool.acquire() as db, db.transaction():
            version = await change_txn(
                db,
                adds=[ListEntry(EntryKind.CARD, n, reason="lost") for n in adds],
                removes=[(EntryKind.CARD, n) for n in removes],
                now=dt.datetime.now(dt.UTC),
            )
        assert version is not None
        return version

    async def kiosk(self, terminal_id: str) -> Kiosk:
        registration = await self.register(terminal_id, TerminalKind.KIOSK, operator="kiosk-co")
        return Kiosk(self.link(registration), registration.psam_terminal_no)


@pytest_asyncio.fixture
async def rig(settings: Settings, keyring: Keyring) -> AsyncIterator[Rig]:
    async with running_gateway(settings, keyring, port=0) as (gateway, address):
        rig = Rig(gateway, gateway.host, address, ec.generate_private_key(ec.SECP256R1()), [])
        yield rig
        for link in rig.links:
            await link.close()
