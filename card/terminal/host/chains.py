"""Follow-up flags from the sequences records belong to (card-protocol.md §4.4-§4.5): the
terminal's serials and each card's offline counter and balance.

They flag, never refuse: the records passed their checks and their money moves; an operator looks.
Both run inside the batch's transaction, after the records are inserted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from card._db import Connection
from card.terminal.spec import Flag, RecordKind

if TYPE_CHECKING:
    from card.terminal.host.batch_commit import Work

__all__ = ["CardState", "flag_card_chains", "flag_serial_gaps"]

_LOAD_SLACK = dt.timedelta(minutes=5)  # readers' clocks against the host's, and DT7's whole seconds


@dataclass(frozen=True, slots=True)
class CardState:
    """A card's latest accepted offline record: its counter, the balance after it, and when."""

    counter: int
    balance_after: int
    at: dt.datetime


def flag_serial_gaps(inserted: list[Work], last_serial: int) -> None:
    """Serials missing before each newly stored record, whatever its result: a record received and
    refused is not missing (it is in the suspense queue)."""
    if not last_serial:
        return  # the terminal's first upload: nothing to be missing from
    expected = last_serial + 1
    for w in sorted(inserted, key=lambda x: x.record.terminal_serial):
        serial = w.record.terminal_serial
        if serial > expected:
            w.flags.append((Flag.SERIAL_GAP, f"serials {expected}..{serial - 1} missing"))
        expected = max(expected, serial + 1)


async def flag_card_chains(conn: Connection, accepted: list[Work], previous: dict[bytes, CardState]) -> None:
    """Counter gaps and breaks in the balance chain, card by card, in counter order from the card's
    latest accepted record before this batch.

    A record older than that (a late upload from another reader) is not compared and does not
    move the card's state back, so the records after it are not flagged for its sake. The balance
    before a purchase is the balance after the previous one plus the card's online loads in
    between (§4.5: loads are seen online): the confirmed loads around that time whose balance
    before continues the chain, each taking it on to its balance after."""
    state = dict(previous)
    breaks: list[tuple[Work, CardState]] = []
    for w in sorted(accepted, key=lambda x: (x.record.app_serial, x.counter)):
        r = w.record
        if r.kind == RecordKind.QR:
            continue
        prior = state.get(r.app_serial)
        if prior is not None:
            if w.counter <= prior.counter:
                continue
            if w.counter > prior.counter + 1:
                w.flags.append(
                    (Flag.COUNTER_GAP, f"card counters {prior.counter + 1}..{w.counter - 1} missing")
                )
            elif r.balance_before is not None and r.balance_before != prior.balance_after:
                breaks.append((w, prior))
        assert w.txn_time is not None
        state[r.app_serial] = CardState(w.counter, (r.balance_before or 0) - r.amount, w.txn_time)
    if not breaks:
        return
    # A load's time is the host's and a purchase's the reader's (to the second): the loads of a
    # generous window are fetched, and the balances themselves say which continue the chain.
    rows = await conn.fetch(
        "SELECT v.i, l.balance_before, l.new_balance "
        "FROM unnest($1::bytea[], $2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY "
        "AS v(app_serial, since, until, i) JOIN card.terminal_loads l ON l.app_serial = v.app_serial "
        "AND l.state = 'confirmed' AND l.created_at > v.since - $4::interval "
        "AND l.created_at < v.until + $4::interval ORDER BY v.i, l.created_at",
        [w.record.app_serial for w, _ in breaks],
        [prior.at for _, prior in breaks],
        [w.txn_time for w, _ in breaks],
        _LOAD_SLACK,
    )
    loads: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        if row["new_balance"] is not None:
            loads.setdefault(int(row["i"]), []).append((int(row["balance_before"]), int(row["new_balance"])))
    for i, (w, prior) in enumerate(breaks, start=1):
        balance = prior.balance_after
        for before, after in loads.get(i, ()):
            if before == balance:
                balance = after
        if w.record.balance_before != balance:
            detail = f"balance before {w.record.balance_before}, previous after {prior.balance_after}"
            if balance != prior.balance_after:
                detail += f", {balance} with the loads since"
            w.flags.append((Flag.BALANCE_CHAIN, detail))
