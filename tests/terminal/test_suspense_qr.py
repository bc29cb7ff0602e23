"""Suspended QR rides (docs/terminal-protocol.md §5.4): an accept re-verifies the QR and the
reader's MAC under the terminal's current master key, so a ride held from before a re-key can
only be rejected."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from card.audit import Actor
from card.qr import Concession, build_qr_payload
from card.terminal.host.suspense import SuspenseRecordUnverified, SuspenseResolver
from card.terminal.spec import RecordReason, RecordResult
from mock_terminals.bus import BusReader
from mock_terminals.card import SoftwareCard
from tests.terminal.conftest import Rig
from tests.terminal.test_suspense_resolution import entry, money


async def _listed_ride(rig: Rig, bus: BusReader, card: SoftwareCard, amount: int) -> int:
    """A QR ride of a card listed in the blacklist version the reader reports: held BLACKLISTED."""
    host = rig.host
    now = dt.datetime.now(dt.UTC)
    phone = ec.generate_private_key(ec.SECP256R1())
    authorisation = await host.keys.sign_qr_authorisation(
        issuer_id=host.card_settings.issuer_code,
        card_number=card.card_number,
        concession=Concession.STANDARD,
        cap_fen=host.card_settings.single_payment_cap_fen,
        expires_at=now + dt.timedelta(hours=1),
        device_public_key=phone.public_key(),
    )
    record = bus.scan_qr(build_qr_payload(authorisation, phone, now), amount, now)
    await bus.upload()
    assert bus.results[record.terminal_serial] == (RecordResult.REJECTED, RecordReason.BLACKLISTED)
    return record.terminal_serial


async def test_a_held_qr_ride_is_accepted_until_the_terminal_is_rekeyed(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-QR", [card])
    await bus.sync()  # the platform's QR keys
    # The reader had the list that names the card, and let the rides through anyway.
    bus.blacklist_version = await rig.blacklist([int(card.card_number)])
    first = await _listed_ride(rig, bus, card, 200)
    second = await _listed_ride(rig, bus, card, 300)
    resolver = SuspenseResolver(rig.host.registry, rig.host.keys, rig.host.card_settings)
    actor = Actor(kind="operator", id=str(uuid.uuid4()))
    before = await money(rig, card)
    done = await resolver.resolve("BUS-QR", first, decision="accept", note="collect it", actor=actor)
    assert (done.decision, done.amount) == ("accept", 200) and done.transfer_id is not None
    assert await money(rig, card) == (before[0] - 200, before[1] + 200)

    await rig.host.registry.rekey("BUS-QR")  # the reader's MAC key of the second ride is gone
    with pytest.raises(SuspenseRecordUnverified, match="BAD_QR_TAC"):
        await resolver.resolve("BUS-QR", second, decision="accept", note="collect it", actor=actor)
    async with rig.host.pool.acquire() as db:
        found = await entry(db, "BUS-QR", second)
    assert (found["state"], found["status"]) == ("open", "suspended")
    assert await money(rig, card) == (before[0] - 200, before[1] + 200)
    rejected = await resolver.resolve("BUS-QR", second, decision="reject", note="write off", actor=actor)
    assert rejected.decision == "reject"
