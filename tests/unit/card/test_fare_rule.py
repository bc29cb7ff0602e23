"""A terminal rating a ride from its downloaded ``FareRule`` gets the host's fare
(``payments.fares.line_fare``, what FARE_MISMATCH is checked against), for flat and distance lines,
with and without both stops."""

from __future__ import annotations

import pytest

from card.terminal.messages import FareRule
from payments.fares.model import FareTable, LineFare, line_fare

TABLE = FareTable(
    operator="bus-co",
    default_fare=300,
    lines=(
        LineFare(line="B1", base_fare=200),
        LineFare(line="M1", kind="distance", base_fare=200, per_stop_fare=50, max_fare=600),
        LineFare(line="M2", kind="distance", base_fare=100, per_stop_fare=30),
    ),
)


def _rule(entry: LineFare) -> FareRule:
    # As card.terminal.host.downloads sends it.
    return FareRule(
        line=entry.line, base_fare=entry.base_fare, per_stop_fare=entry.per_stop_fare, max_fare=entry.max_fare
    )


@pytest.mark.parametrize("line", ["B1", "M1", "M2"])
@pytest.mark.parametrize(
    ("entry_stop", "exit_stop"), [(None, None), (3, None), (None, 7), (2, 2), (2, 9), (9, 1), (0, 40)]
)
def test_the_terminal_rates_as_the_host(line: str, entry_stop: int | None, exit_stop: int | None) -> None:
    entry = TABLE.line(line)
    assert entry is not None
    expected = line_fare(TABLE, line, entry_stop, exit_stop)
    assert _rule(entry).fare(entry_stop, exit_stop, TABLE.default_fare) == expected
