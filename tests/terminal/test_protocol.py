"""Idle and slow connections time out; settlement totals are compared; the blacklist delta message."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest_asyncio

from card.terminal.gateway import Gateway
from card.terminal.messages import (
    Blacklist,
    BlacklistResponse,
    Heartbeat,
    HeartbeatResponse,
    Settlement,
    SettlementResponse,
)
from card.terminal.spec import ResultCode
from tests.terminal.conftest import Rig


@pytest_asyncio.fixture
async def strict_gateway(rig: Rig) -> AsyncIterator[tuple[str, int]]:
    """A second gateway on the same host with short idle (0.5 s) and frame (0.5 s) timeouts."""
    settings = msgspec.structs.replace(rig.gateway.settings, idle_timeout=0.5, frame_timeout=0.5)
    gateway = Gateway(rig.host, settings)
    address = await gateway.start(host="127.0.0.1", port=0)
    yield address
    await gateway.close()


async def _closed_by_gateway(reader: asyncio.StreamReader) -> bytes:
    """Everything the gateway sends until it closes the connection (bounded so a bug fails, not hangs)."""
    received = b""
    while data := await asyncio.wait_for(reader.read(65536), 30):
        received += data
    return received


async def test_idle_connection_is_closed(strict_gateway: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*strict_gateway)
    try:
        assert await _closed_by_gateway(reader) == b""  # nothing sent, nothing answered: closed
    finally:
        writer.close()


@pytest_asyncio.fixture
async def frame_deadline_gateway(rig: Rig) -> AsyncIterator[tuple[str, int]]:
    """A gateway whose idle timeout never fires during a test (600 s) and frame timeout is 0.5 s:
    only the frame deadline can close a connection that keeps sending bytes."""
    settings = msgspec.structs.replace(rig.gateway.settings, idle_timeout=600.0, frame_timeout=0.5)
    gateway = Gateway(rig.host, settings)
    address = await gateway.start(host="127.0.0.1", port=0)
    yield address
    await gateway.close()


async def test_slow_frame_is_closed_even_while_bytes_trickle(frame_deadline_gateway: tuple[str, int]) -> None:
    """A frame must complete within ``frame_timeout`` from its first byte; trickling does not extend it.

    The frame announces 1,024 bytes and the trickle never sends them all, so no frame ever completes;
    bytes keep coming, so the idle timeout is never reached either. Only the frame deadline closes the
    connection (without it, the read below gives up after 30 s and the test fails)."""
    reader, writer = await asyncio.open_connection(*frame_deadline_gateway)
    closed = asyncio.create_task(_closed_by_gateway(reader))
    try:
        writer.write((1024).to_bytes(2, "big"))
        for _ in range(1022):  # never the whole frame
            if closed.done():
                break
            writer.write(b"\x00")
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(0.05)
        assert await closed == b""  # closed without an answer: the frame never completed
    finally:
        writer.close()


async def test_an_active_connection_outlives_the_idle_timeout(
    rig: Rig, strict_gateway: tuple[str, int]
) -> None:
    registration = await rig.register("BUS-BUSY")
    link = rig.link(registration)
    link.host, link.port = strict_gateway
    await link.sign_on()
    for _ in range(5):
        answer = await link.request(Heartbeat(), HeartbeatResponse)
        assert answer.result == ResultCode.OK
    assert link.reconnects == 0


async def test_settlement_totals_are_compared(rig: Rig) -> None:
    cards = await rig.cards(4, balance=10_000)
    bus = await rig.bus("BUS-SET", cards)
    bus.batch_size = 3
    now = dt.datetime.now(dt.UTC)
    amounts = [150, 200, 250, 300, 350, 400, 450]
    for i, amount in enumerate(amounts):
        bus.tap(cards[i % len(cards)], amount, now)
    await bus.upload()
    assert bus.batch_number == 3 and bus.counts["accepted"] == len(amounts)

    matched = await bus.link.request(
        Settlement(batch_from=1, batch_to=3, count=len(amounts), amount=sum(amounts)), SettlementResponse
    )
    assert (matched.result, matched.host_count, matched.host_amount) == (ResultCode.OK, 7, sum(amounts))
    # The terminal's totals for batches 2..3 claim one record more than the host holds.
    short = await bus.link.request(
        Settlement(batch_from=2, batch_to=3, count=5, amount=1_550), SettlementResponse
    )
    assert short.result == ResultCode.SETTLEMENT_MISMATCH
    assert (short.host_count, short.host_amount) == (4, sum(amounts[3:]))
    async with rig.host.pool.acquire() as db:
        rows = await db.fetch(
            "SELECT batch_from, batch_to, terminal_count, host_count, matched FROM card.terminal_settlements "
            "WHERE terminal_id = 'BUS-SET' ORDER BY id"
        )
    assert [tuple(r) for r in rows] == [(1, 3, 7, 7, True), (2, 3, 5, 4, False)]


async def test_blacklist_delta(rig: Rig) -> None:
    cards = await rig.cards(3)
    bus = await rig.bus("BUS-BL", cards)
    numbers = [int(c.card_number) for c in cards]
    await bus.sync()
    start = bus.blacklist_version
    assert not bus.blacklist & {c.card_number for c in cards}

    v1 = await rig.blacklist(adds=numbers[:2])
    delta = await bus.link.request(Blacklist(since_version=start), BlacklistResponse)
    assert delta.result == ResultCode.OK and delta.version == v1
    if start:  # a delta since the reader's version (a reader at 0 gets the full list)
        assert not delta.full and set(delta.added) == {str(n) for n in numbers[:2]} and not delta.removed
    await bus.sync()
    assert {cards[0].card_number, cards[1].card_number} <= bus.blacklist

    v2 = await rig.blacklist(adds=[numbers[2]], removes=[numbers[0]])
    delta = await bus.link.request(Blacklist(since_version=v1), BlacklistResponse)
    assert (delta.version, delta.full) == (v2, 0)
    assert set(delta.added) == {str(numbers[2])} and set(delta.removed) == {str(numbers[0])}
    await bus.sync()
    assert bus.blacklist_version == v2
    assert {cards[1].card_number, cards[2].card_number} <= bus.blacklist
    assert cards[0].card_number not in bus.blacklist

    # Up to date: an empty delta. From a version the host never issued: the full list again.
    same = await bus.link.request(Blacklist(since_version=v2), BlacklistResponse)
    assert (same.version, same.full, same.added, same.removed) == (v2, 0, (), ())
    ahead = await bus.link.request(Blacklist(since_version=v2 + 100), BlacklistResponse)
    assert ahead.full == 1 and {str(numbers[1]), str(numbers[2])} <= set(ahead.added)
    assert str(numbers[0]) not in ahead.added
