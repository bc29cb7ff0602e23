"""End to end over TCP: sign-on, offline taps, upload, duplicates, ledger."""

from __future__ import annotations

import datetime as dt

import pytest

from card.terminal.host.ports import kiosk_cash_account_id
from card.terminal.spec import RecordReason, RecordResult
from payments.ledger.check import check_ledger
from tests.terminal.conftest import Rig


async def test_taps_are_accepted_once_and_posted(rig: Rig) -> None:
    cards = await rig.cards(3, balance=1_000)
    bus = await rig.bus("BUS-1", cards)
    await bus.sync()
    now = dt.datetime.now(dt.UTC)
    for card in cards:
        bus.tap(card, 200, now)
        bus.tap(card, 200, now)
    sent = list(bus.queue.values())
    assert await bus.upload() == 6
    assert bus.counts == {"accepted": 6, "duplicate": 0, "rejected": 0}
    # The acknowledgement was "lost": the reader sends the same records again.
    bus.queue = {r.terminal_serial: r for r in sent}
    await bus.upload()
    assert bus.counts["duplicate"] == 6
    async with rig.host.pool.acquire() as db:
        for card in cards:
            info = (await rig.host.cards.by_app_serial(db, [card.app_serial]))[card.app_serial]
            assert info.ledger_account_id is not None
            assert await rig.host.ledger.balance(db, info.ledger_account_id) == 600 == card.balance
        assert await db.fetchval("SELECT count(*) FROM card.terminal_records WHERE status = 'accepted'") == 6


async def test_forged_tac_goes_to_suspense(rig: Rig) -> None:
    import msgspec

    cards = await rig.cards(1)
    bus = await rig.bus("BUS-2", cards)
    record = bus.tap(cards[0], 300, dt.datetime.now(dt.UTC))
    bus.queue[record.terminal_serial] = msgspec.structs.replace(record, amount=3)
    await bus.upload()
    assert bus.results[record.terminal_serial] == (RecordResult.REJECTED, RecordReason.BAD_TAC)
    async with rig.host.pool.acquire() as db:
        assert await db.fetchval("SELECT reason FROM card.terminal_suspense") == RecordReason.BAD_TAC


async def test_online_load_confirm_and_reversal(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    answer = await kiosk.load(card, 5_000)
    assert answer.result == 0 and card.balance == 5_000
    reversed_answer = await kiosk.load(card, 2_000, drop_credit=True)
    assert reversed_answer.result == 0 and card.balance == 5_000
    async with rig.host.pool.acquire() as db:
        info = (await rig.host.cards.by_app_serial(db, [card.app_serial]))[card.app_serial]
        assert info.ledger_account_id is not None
        assert await rig.host.ledger.balance(db, info.ledger_account_id) == 5_000
        states = sorted(r["state"] for r in await db.fetch("SELECT state FROM card.terminal_loads"))
        assert states == ["confirmed", "reversed"]
        # The kiosk's own clearing account paid the confirmed load; the ledger's invariants hold.
        cash = await rig.host.ledger.balance(db, kiosk_cash_account_id("kiosk-co", "KIOSK-1"))
        assert cash == -5_000
        assert await check_ledger(db) == []


async def test_bus_reader_cannot_load(rig: Rig) -> None:
    from mock_terminals.bus import Kiosk
    from mock_terminals.link import LinkError

    [card] = await rig.cards(1, balance=0)
    bus = await rig.bus("BUS-X", [card])
    kiosk = Kiosk(bus.link, bus.psam.terminal_no)
    with pytest.raises(LinkError) as refused:
        await kiosk.load(card, 100)
    assert refused.value.code == 0x0207
