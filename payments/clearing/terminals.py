"""The totals terminals reported with the protocol's settlement message against the host's
(``card.terminal_settlements``, read only), per operator, for a settlement window."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import msgspec

from payments._db import Pool

__all__ = ["TerminalTotals", "terminal_totals"]


class TerminalTotals(msgspec.Struct, frozen=True, kw_only=True):
    terminal_id: str
    batch_from: int
    batch_to: int
    terminal_count: int
    terminal_amount: int
    host_count: int
    host_amount: int

    @property
    def matched(self) -> bool:
        return self.terminal_count == self.host_count and self.terminal_amount == self.host_amount


async def terminal_totals(
    pool: Pool, window_from: dt.datetime, window_to: dt.datetime
) -> dict[str, list[TerminalTotals]]:
    if not await pool.fetchval("SELECT to_regclass('card.terminal_settlements') IS NOT NULL"):
        return {}  # payments without the card domain: no terminals to compare
    rows = await pool.fetch(
        "SELECT t.operator, s.terminal_id, s.batch_from, s.batch_to, s.terminal_count, s.terminal_amount, "
        "s.host_count, s.host_amount FROM card.terminal_settlements s "
        "JOIN card.terminals t ON t.id = s.terminal_id "
        "WHERE s.created_at >= $1 AND s.created_at < $2 ORDER BY s.terminal_id, s.id",
        window_from,
        window_to,
    )
    found: dict[str, list[TerminalTotals]] = defaultdict(list)
    for r in rows:
        values = dict(r.items())
        found[values.pop("operator")].append(TerminalTotals(**values))
    return found
