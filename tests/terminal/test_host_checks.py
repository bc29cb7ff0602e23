"""Host checks on uploaded records (docs/terminal-protocol.md §5.2) with real card numbers: the
blacklist version the reader had, a card counter reported twice, and the follow-up flags."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from card.keys import SoftwareKeyStore
from card.terminal.spec import Flag, RecordReason, RecordResult, ResultCode
from mock_terminals.link import LinkError
from tests.terminal.conftest import Rig


async def _flags(rig: Rig, terminal_id: str) -> dict[int, set[Flag]]:
    async with rig.host.pool.acquire() as db:
        rows = await db.fetch(
            "SELECT terminal_serial, flag FROM card.terminal_followups WHERE terminal_id = $1", terminal_id
        )
    out: dict[int, set[Flag]] = {}
    for r in rows:
        out.setdefault(int(r["terminal_serial"]), set()).add(Flag(r["flag"]))
    return out


async def test_blacklist_with_full_length_card_numbers(rig: Rig) -> None:
    """A card listed in a version the reader already had is refused; one listed after it is taken
    (the card did pay) and flagged. Card numbers are 19 digits, as issued by default."""
    cards = await rig.cards(2, balance=1_000)
    assert all(len(c.card_number) == 19 for c in cards)
    bus = await rig.bus("BUS-BLK", cards)
    await bus.sync()
    before = bus.blacklist_version
    version = await rig.blacklist([int(c.card_number) for c in cards])
    now = dt.datetime.now(dt.UTC)
    bus.blacklist_version = version  # the reader had the list that names card 0, and tapped it anyway
    known = bus.tap(cards[0], 100, now)
    bus.blacklist_version = before  # card 1 was tapped before the reader had that list
    late = bus.tap(cards[1], 100, now)
    await bus.upload()
    assert bus.results[known.terminal_serial] == (RecordResult.REJECTED, RecordReason.BLACKLISTED)
    assert bus.results[late.terminal_serial] == (RecordResult.ACCEPTED, 0)
    assert Flag.LATE_BLACKLIST in (await _flags(rig, "BUS-BLK")).get(late.terminal_serial, set())


async def _suspended(rig: Rig, terminal_id: str) -> dict[int, int]:
    async with rig.host.pool.acquire() as db:
        rows = await db.fetch(
            "SELECT terminal_serial, reason FROM card.terminal_suspense WHERE terminal_id = $1", terminal_id
        )
    return {int(r["terminal_serial"]): int(r["reason"]) for r in rows}


async def test_a_card_counter_claimed_twice_is_refused_not_dropped(rig: Rig) -> None:
    """The TAC does not cover the card's counter: a second, genuine debit reported with a counter
    already taken (a reader's bug) must reach the suspense queue, not vanish as a "duplicate"."""
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-CC", [card])
    now = dt.datetime.now(dt.UTC)
    first = bus.tap(card, 100, now)
    second = bus.tap(card, 150, now)
    bus.queue[second.terminal_serial] = msgspec.structs.replace(second, card_counter=first.card_counter)
    await bus.upload()  # both in one batch
    assert bus.results[first.terminal_serial] == (RecordResult.ACCEPTED, 0)
    assert bus.results[second.terminal_serial] == (RecordResult.REJECTED, RecordReason.DUPLICATE_CARD_COUNTER)
    third = bus.tap(card, 120, now)
    bus.queue[third.terminal_serial] = msgspec.structs.replace(third, card_counter=first.card_counter)
    await bus.upload()  # against an accepted record of an earlier batch
    assert bus.results[third.terminal_serial] == (RecordResult.REJECTED, RecordReason.DUPLICATE_CARD_COUNTER)
    assert await _suspended(rig, "BUS-CC") == {
        second.terminal_serial: RecordReason.DUPLICATE_CARD_COUNTER,
        third.terminal_serial: RecordReason.DUPLICATE_CARD_COUNTER,
    }
    async with rig.host.pool.acquire() as db:
        charged = await db.fetchval(
            "SELECT sum(amount) FROM card.terminal_records "
            "WHERE terminal_id = 'BUS-CC' AND status = 'accepted'"
        )
    assert charged == 100
    # Sent again (a lost answer): each is answered "duplicate", nothing charged twice.
    for record in (first, second, third):
        bus.queue[record.terminal_serial] = record
    await bus.upload()
    assert {bus.results[r.terminal_serial][0] for r in (first, second, third)} == {RecordResult.DUPLICATE}


async def test_serial_gaps_count_refused_records_as_received(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-SG", [card])
    now = dt.datetime.now(dt.UTC)
    bus.tap(card, 100, now)
    await bus.upload()
    forged = bus.tap(card, 100, now)
    bus.queue[forged.terminal_serial] = msgspec.structs.replace(forged, tac=bytes(4))
    after = bus.tap(card, 100, now)
    await bus.upload()
    assert bus.results[forged.terminal_serial] == (RecordResult.REJECTED, RecordReason.BAD_TAC)
    lost = bus.tap(card, 100, now)
    del bus.queue[lost.terminal_serial]  # never uploaded
    gap = bus.tap(card, 100, now)
    await bus.upload()
    flags = await _flags(rig, "BUS-SG")
    assert Flag.SERIAL_GAP not in flags.get(after.terminal_serial, set())
    assert Flag.SERIAL_GAP in flags[gap.terminal_serial]
    assert Flag.COUNTER_GAP in flags[gap.terminal_serial]  # the card's counter skipped one too


async def test_a_late_record_does_not_flag_the_ones_after_it(rig: Rig) -> None:
    """The card was tapped on bus A, then three times on bus B; B uploads first. A's record, late
    and older, must not move the card back so that B's next one looks like a counter gap."""
    [card] = await rig.cards(1, balance=1_000)
    early, late = await rig.bus("BUS-LA", [card]), await rig.bus("BUS-LB", [card])
    now = dt.datetime.now(dt.UTC)
    early.tap(card, 100, now)
    for _ in range(3):
        late.tap(card, 100, now)
    await late.upload()
    early.tap(card, 100, now)  # counter 4, after the late one (counter 0) in the same batch
    await early.upload()
    assert all(
        flag is not Flag.COUNTER_GAP for found in (await _flags(rig, "BUS-LA")).values() for flag in found
    )


async def test_online_loads_continue_the_balance_chain(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-BC", [card])
    kiosk = await rig.kiosk("KIOSK-BC")
    bus.tap(card, 200, dt.datetime.now(dt.UTC))
    await bus.upload()
    await kiosk.load(card, 500)
    after_load = bus.tap(card, 200, dt.datetime.now(dt.UTC))
    wrong = bus.tap(card, 200, dt.datetime.now(dt.UTC))
    assert wrong.balance_before is not None
    # The balance is not under the TAC: a reader that misreports it is flagged, not refused.
    bus.queue[wrong.terminal_serial] = msgspec.structs.replace(wrong, balance_before=wrong.balance_before + 1)
    await bus.upload()
    flags = await _flags(rig, "BUS-BC")
    assert Flag.BALANCE_CHAIN not in flags.get(after_load.terminal_serial, set())
    assert Flag.BALANCE_CHAIN in flags[wrong.terminal_serial]


async def test_card_keys_come_from_this_platforms_issuer(rig: Rig) -> None:
    """A record or a load naming another issuer is refused before any key is derived for it (the
    key store's cache would otherwise fill with keys of made-up issuers)."""
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-ISS", [card])
    record = bus.tap(card, 100, dt.datetime.now(dt.UTC))
    assert record.issuer_id is not None
    other = bytes(b ^ 0xFF for b in record.issuer_id)
    bus.queue[record.terminal_serial] = msgspec.structs.replace(record, issuer_id=other)
    await bus.upload()
    assert bus.results[record.terminal_serial] == (RecordResult.REJECTED, RecordReason.BAD_TAC)

    def derived_for_other() -> list[tuple[str, int, bytes, bytes]]:
        keys = rig.host.keys
        assert isinstance(keys, SoftwareKeyStore)  # its cache of derived card keys
        return [k for k in keys._card_keys if k[3] == other]

    assert derived_for_other() == []
    kiosk = await rig.kiosk("KIOSK-ISS")
    card.issuer_id = other  # the card presents another issuer's id in its file 0x15
    with pytest.raises(LinkError) as refused:
        await kiosk.load(card, 100)
    assert refused.value.code == ResultCode.LOAD_MAC1_INVALID
    assert derived_for_other() == []
