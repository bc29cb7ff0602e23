"""Fares: rating examples, the table store's versions, QR capping in the database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from payments.fares import (
    Caps,
    DayTaps,
    FareTable,
    FareTableInvalid,
    LineFare,
    Ride,
    cap_rebates,
    current_fare_table,
    line_fare,
    publish_fare_table,
    rate_rides,
    service_day,
    terminal_fare_table,
)
from payments.fares.qr import NoFareTable, charge_qr_ride_txn

UTC = dt.UTC
MONDAY = dt.datetime(2026, 10, 5, 1, 0, tzinfo=UTC)  # 09:00 in China, a Monday

TABLE = FareTable(
    operator="metro",
    default_fare=200,
    lines=(
        LineFare(line="B1", base_fare=200),
        LineFare(line="M1", kind="distance", base_fare=300, per_stop_fare=100, max_fare=900),
        LineFare(
            line="M2", kind="zones", base_fare=0, stop_zones=(1, 1, 2, 2, 3), zone_fares=(300, 500, 700)
        ),
    ),
    transfer_window=3600,
    transfer_discount=100,
    caps=Caps(daily=1000, weekly=4000),
)


def test_line_fares() -> None:
    assert line_fare(TABLE, "B1", None, None) == 200
    assert line_fare(TABLE, "M1", 2, 5) == 600
    assert line_fare(TABLE, "M1", 0, 20) == 900  # the maximum
    assert line_fare(TABLE, "M1", 3, None) == 200  # no exit: the default fare
    assert line_fare(TABLE, "M2", 0, 1) == 300
    assert line_fare(TABLE, "M2", 0, 4) == 700
    assert line_fare(TABLE, "X9", 0, 4) == 200


def test_concessions_transfer_and_daily_cap() -> None:
    rides = [
        Ride(at=MONDAY + dt.timedelta(hours=2 * i), line="M1", entry_stop=0, exit_stop=4) for i in range(5)
    ]
    charges = rate_rides(TABLE, rides)
    assert [c.charged for c in charges] == [700, 300, 0, 0, 0]  # 700 + 700 capped at 1000
    senior = rate_rides(TABLE, [Ride(at=MONDAY, line="B1", concession="senior")])
    assert senior[0].charged == 0
    assert senior[0].concession_discount == 200
    student = rate_rides(TABLE, [Ride(at=MONDAY, line="M1", entry_stop=0, exit_stop=3, concession="student")])
    assert student[0].charged == 300
    transfer = rate_rides(
        TABLE, [Ride(at=MONDAY, line="B1"), Ride(at=MONDAY + dt.timedelta(minutes=30), line="B1")]
    )
    assert [c.charged for c in transfer] == [200, 100]
    assert transfer[1].transfer_discount == 100


def test_next_day_and_weekly_cap() -> None:
    rides = [
        Ride(at=MONDAY + dt.timedelta(days=d, hours=2 * i), line="M1", entry_stop=0, exit_stop=6)
        for d in range(6)
        for i in range(3)
    ]
    per_day: dict[dt.date, int] = {}
    for ride, charge in zip(sorted(rides, key=lambda r: r.at), rate_rides(TABLE, rides), strict=True):
        per_day[service_day(ride.at)] = per_day.get(service_day(ride.at), 0) + charge.charged
    assert list(per_day.values()) == [1000, 1000, 1000, 1000, 0, 0]


def test_service_day_changes_at_four_in_china() -> None:
    assert service_day(dt.datetime(2026, 10, 5, 19, 59, tzinfo=UTC)) == dt.date(2026, 10, 5)  # 03:59
    assert service_day(dt.datetime(2026, 10, 5, 20, 0, tzinfo=UTC)) == dt.date(2026, 10, 6)  # 04:00


def test_rebates_for_stored_value() -> None:
    days = [DayTaps(dt.date(2026, 10, 5) + dt.timedelta(days=i), 1500) for i in range(5)]
    rebates = cap_rebates(TABLE, days)
    assert list(rebates.values()) == [500, 500, 500, 500, 1500]


def test_invalid_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        FareTable(operator="x", default_fare=-1).validate()
    with pytest.raises(ValueError, match="weekly"):
        FareTable(operator="x", default_fare=1, caps=Caps(daily=10, weekly=5)).validate()


async def test_versions_and_terminal_download(db: Any) -> None:
    assert await current_fare_table(db, "metro") is None
    assert await publish_fare_table(db, TABLE) == 1
    assert await publish_fare_table(db, TABLE) == 1  # the same table: the same version
    cheaper = FareTable(operator="metro", default_fare=150, lines=TABLE.lines, caps=TABLE.caps)
    assert await publish_fare_table(db, cheaper) == 2
    current = await current_fare_table(db, "metro")
    assert current is not None
    assert (current.version, current.default_fare) == (2, 150)
    download = await terminal_fare_table(db, "metro")
    assert download is not None
    assert download.version == 2
    assert ("M1", 300, 100, 900) in download.rules
    assert ("B1", 200, 0, 0) in download.rules
    assert FareTable.__name__ and b'"default_fare":150' in download.body
    with pytest.raises(FareTableInvalid):
        await publish_fare_table(db, FareTable(operator="metro", default_fare=-5))


async def test_qr_rides_are_capped_in_the_database(db: Any) -> None:
    with pytest.raises(NoFareTable):
        async with db.transaction():
            await charge_qr_ride_txn(db, card_id="c1", operator="metro", ride=Ride(at=MONDAY, line="B1"))
    await publish_fare_table(db, TABLE, effective_from=MONDAY - dt.timedelta(days=1))
    charged = []
    for i in range(4):
        async with db.transaction():
            ride = Ride(at=MONDAY + dt.timedelta(hours=2 * i), line="M1", entry_stop=0, exit_stop=6)
            charge = await charge_qr_ride_txn(db, card_id="c1", operator="metro", ride=ride)
            charged.append(charge.charged)
    assert charged == [900, 100, 0, 0]
