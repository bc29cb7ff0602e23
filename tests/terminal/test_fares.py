"""Fares for terminals: the operator's versioned fare tables from payments, downloaded and re-rated."""

from __future__ import annotations

import datetime as dt

from card.terminal.messages import Heartbeat, HeartbeatResponse, Parameters, ParametersResponse
from card.terminal.spec import Flag, RecordResult
from payments.fares import FareTable, LineFare, publish_fare_table
from tests.terminal.conftest import Rig


async def test_download_and_re_rating_follow_the_versioned_tables(rig: Rig) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cards = await rig.cards(1, balance=10_000)
    bus = await rig.bus("BUS-F1", cards)  # operator "bus-co", line "B1"

    # Before any table: nothing to download, nothing re-rated (no follow-up for any amount).
    params = await bus.link.request(Parameters(), ParametersResponse)
    assert params.fare_version == 0 and params.fares == () and params.default_fare is None

    old = FareTable(operator="bus-co", default_fare=200, lines=(LineFare(line="B1", base_fare=300),))
    new = FareTable(
        operator="bus-co",
        default_fare=200,
        lines=(
            LineFare(line="B1", base_fare=100),
            LineFare(line="B2", kind="distance", base_fare=100, per_stop_fare=50, max_fare=400),
        ),
    )
    async with rig.host.pool.acquire() as db:
        v1 = await publish_fare_table(db, old, effective_from=now - dt.timedelta(hours=2))
        v2 = await publish_fare_table(db, new, effective_from=now - dt.timedelta(hours=1))
        await publish_fare_table(db, FareTable(operator="metro-co", default_fare=900))  # another operator's
    assert (v1, v2) == (1, 2)
    rig.host.fares = type(rig.host.fares)()  # a fresh cache, as another gateway would have

    params = await bus.link.request(Parameters(), ParametersResponse)
    assert params.fare_version == 2 and params.default_fare == 200
    rules = [(r.line, r.base_fare, r.per_stop_fare, r.max_fare) for r in params.fares]
    assert rules == [("B1", 100, 0, 0), ("B2", 100, 50, 400)]
    heartbeat = await bus.link.request(Heartbeat(), HeartbeatResponse)
    assert heartbeat.fare_version == 2

    # Each ride is re-rated by the table in effect at its own tap time: 300 under v1, 100 under v2.
    ride_v1 = bus.tap(cards[0], 300, now - dt.timedelta(minutes=90))  # right under v1
    wrong_v1 = bus.tap(cards[0], 100, now - dt.timedelta(minutes=80))  # v2's fare, but v1 was in force
    ride_v2 = bus.tap(cards[0], 100, now)  # right under v2
    wrong_v2 = bus.tap(cards[0], 300, now)  # v1's fare after v2 took effect
    assert await bus.upload() == 4
    assert all(bus.results[r.terminal_serial][0] == RecordResult.ACCEPTED for r in (ride_v1, wrong_v1))
    async with rig.host.pool.acquire() as db:
        rows = await db.fetch(
            "SELECT terminal_serial, detail FROM card.terminal_followups WHERE flag = $1",
            int(Flag.FARE_MISMATCH),
        )
    flagged = {int(r["terminal_serial"]): str(r["detail"]) for r in rows}
    assert flagged == {
        wrong_v1.terminal_serial: "charged 100, fare table v1 says 300",
        wrong_v2.terminal_serial: "charged 300, fare table v2 says 100",
    }
    assert ride_v1.terminal_serial not in flagged and ride_v2.terminal_serial not in flagged
