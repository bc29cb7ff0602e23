"""Fare invariants (hypothesis): never negative, never over the caps, caps monotone."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from payments.fares import Caps, DayTaps, FareTable, LineFare, Ride, cap_rebates, rate_rides, service_day

START = dt.datetime(2026, 10, 5, 0, 0, tzinfo=dt.UTC)

tables = st.builds(
    lambda base, per, mx, daily, extra, window, discount: FareTable(
        operator="op",
        default_fare=base,
        lines=(
            LineFare(line="D", kind="distance", base_fare=base, per_stop_fare=per, max_fare=mx),
            LineFare(line="F", base_fare=base),
        ),
        transfer_window=window,
        transfer_discount=discount,
        caps=Caps(daily=daily, weekly=daily * 5 + extra if daily else extra),
    ),
    st.integers(0, 1000),
    st.integers(0, 300),
    st.integers(0, 3000),
    st.integers(0, 3000),
    st.integers(0, 5000),
    st.integers(0, 7200),
    st.integers(0, 500),
)
rides = st.lists(
    st.builds(
        Ride,
        at=st.integers(0, 14 * 86400).map(lambda s: START + dt.timedelta(seconds=s)),
        line=st.sampled_from(["D", "F", None]),
        entry_stop=st.integers(0, 30) | st.none(),
        exit_stop=st.integers(0, 30) | st.none(),
        concession=st.sampled_from(["standard", "student", "senior", "unknown"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(tables, rides)
def test_never_negative_never_over_the_caps(table: FareTable, rides: list[Ride]) -> None:
    charges = rate_rides(table, rides)
    per_day: dict[dt.date, int] = {}
    for ride, charge in zip(sorted(rides, key=lambda r: r.at), charges, strict=True):
        assert charge.charged >= 0
        assert charge.charged <= charge.fare
        assert charge.fare - charge.concession_discount - charge.transfer_discount - charge.cap_discount == (
            charge.charged
        )
        day = service_day(ride.at)
        per_day[day] = per_day.get(day, 0) + charge.charged
    if table.caps.daily:
        assert all(total <= table.caps.daily for total in per_day.values())
    if table.caps.weekly:
        weeks: dict[dt.date, int] = {}
        for day, total in per_day.items():
            monday = day - dt.timedelta(days=day.weekday())
            weeks[monday] = weeks.get(monday, 0) + total
        assert all(total <= table.caps.weekly for total in weeks.values())


@settings(max_examples=200, deadline=None)
@given(tables, rides, st.integers(0, 2000))
def test_a_higher_cap_never_charges_less(table: FareTable, rides: list[Ride], more: int) -> None:
    higher = FareTable(
        operator=table.operator,
        default_fare=table.default_fare,
        lines=table.lines,
        transfer_window=table.transfer_window,
        transfer_discount=table.transfer_discount,
        caps=Caps(
            daily=table.caps.daily + more if table.caps.daily else 0,
            weekly=table.caps.weekly + more if table.caps.weekly else 0,
        ),
    )
    low = sum(c.charged for c in rate_rides(table, rides))
    high = sum(c.charged for c in rate_rides(higher, rides))
    assert high >= low


@settings(max_examples=300, deadline=None)
@given(tables, st.dictionaries(st.integers(0, 20), st.integers(0, 5000), max_size=15))
def test_rebates_bounded(table: FareTable, debits: dict[int, int]) -> None:
    days = [DayTaps(dt.date(2026, 10, 5) + dt.timedelta(days=d), amount) for d, amount in debits.items()]
    rebates = cap_rebates(table, days)
    for entry in days:
        rebate = rebates[entry.day]
        assert 0 <= rebate <= entry.debited
        if table.caps.daily:
            assert entry.debited - rebate <= table.caps.daily
