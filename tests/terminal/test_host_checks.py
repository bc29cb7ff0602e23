"""Host checks on uploaded records (docs/terminal-protocol.md §5.2) with real card numbers: the
blacklist version the reader had, a card counter reported twice, and the follow-up flags."""

from __future__ import annotations

import datetime as dt

from card.blacklist import EntryKind, ListEntry, change_txn
from card.terminal.spec import Flag, RecordReason, RecordResult
from tests.terminal.conftest import Rig


async def _list(rig: Rig, numbers: list[int]) -> int:
    async with rig.host.pool.acquire() as db, db.transaction():
        version = await change_txn(
            db, adds=[ListEntry(EntryKind.CARD, n, reason="lost") for n in numbers], now=dt.datetime.now(dt.UTC)
        )
    assert version is not None
    return version


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
    version = await _list(rig, [int(c.card_number) for c in cards])
    now = dt.datetime.now(dt.UTC)
    bus.blacklist_version = version  # the reader had the list that names card 0, and tapped it anyway
    known = bus.tap(cards[0], 100, now)
    bus.blacklist_version = before  # card 1 was tapped before the reader had that list
    late = bus.tap(cards[1], 100, now)
    await bus.upload()
    assert bus.results[known.terminal_serial] == (RecordResult.REJECTED, RecordReason.BLACKLISTED)
    assert bus.results[late.terminal_serial] == (RecordResult.ACCEPTED, 0)
    assert Flag.LATE_BLACKLIST in (await _flags(rig, "BUS-BLK")).get(late.terminal_serial, set())
