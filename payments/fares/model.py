"""Fare tables and the pure rating functions (no I/O).

A :class:`FareTable` belongs to one operator and carries a version. Per line a fare is flat,
by distance (``base + per_stop * |exit - entry|`` capped at ``max_fare``), or by zones
(``zone_fares[number of zones crossed]``). Concessions are percentages of the fare paid by
type (senior 0, student 50), passed in as data by the card/identity side. A ride starting
within ``transfer_window`` seconds of the previous paid ride with the same operator gets
``transfer_discount`` off. Riders who pay by QR are capped per service day and per week
(Monday to Sunday): once the cap is reached further rides cost nothing. Stored-value taps
are debited offline at full fare; :func:`cap_rebates` gives what to pay back.

Every amount is an integer in fen; no function here ever returns a negative amount or more
than the caps allow (tests/payments/test_fares_properties.py).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

__all__ = [
    "CARD_CONCESSIONS",
    "CHINA",
    "SERVICE_DAY_STARTS",
    "Caps",
    "Concession",
    "DayTaps",
    "FareTable",
    "LineFare",
    "Ride",
    "RideCharge",
    "RiderState",
    "apply_concession",
    "cap_rebates",
    "charge_ride",
    "line_fare",
    "rate_rides",
    "service_day",
    "week_start",
]

CHINA = dt.timezone(dt.timedelta(hours=8))
SERVICE_DAY_STARTS = dt.time(4, 0)  # a ride at 01:30 belongs to the previous service day


class Concession(enum.StrEnum):
    STANDARD = "standard"
    STUDENT = "student"
    SENIOR = "senior"
    MILITARY = "military"


# card.qr.Concession values (card-protocol.md §5.1 field 8) to the fare table's names.
CARD_CONCESSIONS: dict[int, Concession] = {
    1: Concession.STANDARD,
    2: Concession.STUDENT,
    3: Concession.SENIOR,
    4: Concession.STANDARD,  # test cards pay like everyone else
    5: Concession.MILITARY,
}


class LineFare(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    line: str
    kind: Literal["flat", "distance", "zones"] = "flat"
    base_fare: int  # fen: the flat fare, or the distance fare's boarding part
    per_stop_fare: int = 0  # distance: per stop between entry and exit
    max_fare: int = 0  # distance: the most a ride costs (0: no maximum)
    stop_zones: tuple[int, ...] = ()  # zones: the zone of each stop index
    zone_fares: tuple[int, ...] = ()  # zones: fare by number of zone boundaries crossed


class Caps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    daily: int = 0  # fen per service day (0: no cap)
    weekly: int = 0  # fen per Monday-to-Sunday week (0: no cap)


class FareTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    operator: str
    version: int = 0  # assigned by the store when published
    default_fare: int  # an unknown line, or a ride without stops on a distance line
    lines: tuple[LineFare, ...] = ()
    concessions: dict[str, int] = msgspec.field(
        default_factory=lambda: {"standard": 100, "student": 50, "senior": 0, "military": 100}
    )  # percent of the fare paid
    transfer_window: int = 0  # seconds; 0: no transfer discount
    transfer_discount: int = 0  # fen off a ride within the window
    caps: Caps = msgspec.field(default_factory=Caps)

    def line(self, name: str | None) -> LineFare | None:
        for entry in self.lines:
            if entry.line == name:
                return entry
        return None

    def validate(self) -> None:
        """Raise ``ValueError`` for a table that could rate a ride below zero or nonsensically."""
        amounts = [self.default_fare, self.transfer_discount, self.caps.daily, self.caps.weekly]
        for entry in self.lines:
            amounts += [entry.base_fare, entry.per_stop_fare, entry.max_fare, *entry.zone_fares]
            if entry.kind == "zones" and (not entry.stop_zones or not entry.zone_fares):
                raise ValueError(f"line {entry.line}: a zone fare needs stop_zones and zone_fares")
        if any(a < 0 for a in amounts):
            raise ValueError("fares, discounts and caps are never negative")
        if any(not 0 <= p <= 100 for p in self.concessions.values()):
            raise ValueError("a concession pays between 0 and 100 percent")
        if self.caps.daily and self.caps.weekly and self.caps.weekly < self.caps.daily:
            raise ValueError("the weekly cap is below the daily cap")
        if len({e.line for e in self.lines}) != len(self.lines):
            raise ValueError("a line appears twice")


class Ride(msgspec.Struct, frozen=True, kw_only=True):
    at: dt.datetime  # the tap (entry) time, UTC-aware
    line: str | None = None
    entry_stop: int | None = None
    exit_stop: int | None = None
    concession: str = Concession.STANDARD


class RideCharge(msgspec.Struct, frozen=True, kw_only=True):
    fare: int  # the line's fare before anything
    concession_discount: int
    transfer_discount: int
    cap_discount: int
    charged: int  # what the rider pays: fare minus the three discounts, never negative


class RiderState(msgspec.Struct, kw_only=True):
    """One rider's running totals with one operator (what capping needs)."""

    day: dt.date | None = None
    day_total: int = 0
    week: dt.date | None = None
    week_total: int = 0
    last_paid_at: dt.datetime | None = None


def service_day(at: dt.datetime) -> dt.date:
    """The service day of a moment: China time, the day changing at 04:00."""
    local = at.astimezone(CHINA)
    start = dt.datetime.combine(local.date(), SERVICE_DAY_STARTS, CHINA)
    return local.date() if local >= start else local.date() - dt.timedelta(days=1)


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _zone_index(stops: Sequence[int], stop: int) -> int:
    return stops[min(max(stop, 0), len(stops) - 1)]


def line_fare(table: FareTable, line: str | None, entry_stop: int | None, exit_stop: int | None) -> int:
    entry = table.line(line)
    if entry is None:
        return table.default_fare
    if entry.kind == "flat" or entry_stop is None or exit_stop is None:
        return entry.base_fare if entry.kind == "flat" else table.default_fare
    if entry.kind == "distance":
        fare = entry.base_fare + entry.per_stop_fare * abs(exit_stop - entry_stop)
        return min(fare, entry.max_fare) if entry.max_fare else fare
    crossed = abs(_zone_index(entry.stop_zones, exit_stop) - _zone_index(entry.stop_zones, entry_stop))
    return entry.zone_fares[min(crossed, len(entry.zone_fares) - 1)]


def apply_concession(table: FareTable, fare: int, concession: str) -> int:
    """The fare a concession pays, rounded down to the fen (an unknown type pays in full)."""
    percent = table.concessions.get(concession, 100)
    return fare * percent // 100


def _room(table: FareTable, state: RiderState) -> int | None:
    rooms = []
    if table.caps.daily:
        rooms.append(max(0, table.caps.daily - state.day_total))
    if table.caps.weekly:
        rooms.append(max(0, table.caps.weekly - state.week_total))
    return min(rooms) if rooms else None


def charge_ride(table: FareTable, state: RiderState, ride: Ride, *, capped: bool = True) -> RideCharge:
    """Rate one ride and advance ``state``; ``capped`` False rates without caps (stored value)."""
    day = service_day(ride.at)
    if state.day != day:
        state.day, state.day_total = day, 0
    if state.week != week_start(day):
        state.week, state.week_total = week_start(day), 0
    fare = line_fare(table, ride.line, ride.entry_stop, ride.exit_stop)
    after_concession = apply_concession(table, fare, ride.concession)
    transfer = 0
    if (
        table.transfer_window
        and state.last_paid_at is not None
        and dt.timedelta(0) <= ride.at - state.last_paid_at <= dt.timedelta(seconds=table.transfer_window)
    ):
        transfer = min(table.transfer_discount, after_concession)
    due = after_concession - transfer
    room = _room(table, state) if capped else None
    charged = due if room is None else min(due, room)
    state.day_total += charged
    state.week_total += charged
    if charged > 0:
        state.last_paid_at = ride.at
    return RideCharge(
        fare=fare,
        concession_discount=fare - after_concession,
        transfer_discount=transfer,
        cap_discount=due - charged,
        charged=charged,
    )


def rate_rides(table: FareTable, rides: Iterable[Ride], state: RiderState | None = None) -> list[RideCharge]:
    """Rate one rider's rides with one operator, in time order (QR: capped)."""
    running = state if state is not None else RiderState()
    return [charge_ride(table, running, ride) for ride in sorted(rides, key=lambda r: r.at)]


class DayTaps(msgspec.Struct, frozen=True):
    day: dt.date
    debited: int  # fen the rider's stored-value taps took that service day (one operator)


def cap_rebates(table: FareTable, days: Iterable[DayTaps]) -> dict[dt.date, int]:
    """What to pay back per service day: the amount debited beyond the daily and weekly caps.

    ``days`` are the rider's totals with this operator (any order, one entry per day). The
    rebate of a day is its debits minus what the caps let the day cost, given the days before
    it in the same week; rebates are never negative and never exceed the day's debits.
    """
    rebates: dict[dt.date, int] = {}
    week: dt.date | None = None
    week_total = 0
    for entry in sorted(days, key=lambda d: d.day):
        if week != week_start(entry.day):
            week, week_total = week_start(entry.day), 0
        allowed = entry.debited
        if table.caps.daily:
            allowed = min(allowed, table.caps.daily)
        if table.caps.weekly:
            allowed = min(allowed, max(0, table.caps.weekly - week_total))
        week_total += allowed
        rebates[entry.day] = entry.debited - allowed
    return rebates
