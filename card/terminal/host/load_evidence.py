"""What the card itself later showed of an online load (docs/terminal-protocol.md §6.1, §6.2).

The host never takes a kiosk's word for whether a card was credited when the card's own activity
can say: the evidence is what the card's key vouched for afterwards.

* **Credited** — a later LOAD of the card at a higher online counter (MAC1 under the card's key
  covers the counter, and a card's online counter moves only with CREDIT FOR LOAD, card-protocol
  §1.6: the counter this load held was used), or the card's first offline record after the load
  whose balance before is the load's balance before plus its amount.
* **Not credited** — the card's first offline record after the load whose balance before is the
  load's balance before, when no record can be missing in between: the record before it by the
  card's counter was uploaded, dated before the load and ended at that balance (or it is the
  card's first purchase, counter 0). MAC2 is good only in the load's own session, which the
  purchase ended, so the card can no longer be credited with it. For a *reversed* load also:
  another load of the card at the same online counter that was not reversed (the card reported
  that counter again after this load, so it did not move with this one).

Offline records count as evidence when their TAC was verified: accepted ones, and those
suspended after that check (the ledger refused the debit, which is exactly what a pending credit
causes; the card was listed). "After the load" is by the record's time against the host's, to the
second; a record's predecessor must end at the load's balance before, which catches a reader
whose clock ran ahead (a record before the load dated after it continues its own chain instead).

A reversed load's evidence of a credit says which counter the card used, not always which load:
a card can hold several reversed loads at one counter (each a fresh INITIALIZE FOR LOAD whose
credit failed), and only one of them can have been applied (each MAC2 is good only in its own
session). With more than one, the evidence is **doubtful**: operators decide.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg

from card._db import Connection, Pool
from card.terminal.spec import RecordReason

__all__ = [
    "LOAD_COLUMNS",
    "TRUSTED_SUSPENDED",
    "Evidence",
    "OpenLoad",
    "Outcome",
    "evidence_for",
    "reversal_evidence_for",
]

# Records suspended only after their TAC was verified: the card's own word on its balance.
TRUSTED_SUSPENDED: Final = [int(RecordReason.LEDGER_REFUSED), int(RecordReason.BLACKLISTED)]

LOAD_COLUMNS: Final = (
    "load_id, terminal_id, app_serial, amount, balance_before, online_counter, created_at, state"
)
_LATER_LOAD_SQL: Final = (
    "SELECT load_id, online_counter FROM card.terminal_loads WHERE app_serial = $1 "
    "AND online_counter > $2 AND state <> 'reversed' ORDER BY online_counter LIMIT 1"
)
# The card's trusted records from ``$3`` (the card counter) on, dated from ``$2``: the first one.
_RECORD_COLUMNS: Final = "card_counter, balance_before, amount, txn_time, terminal_id, terminal_serial"
_FIRST_RECORD_SQL: Final = (
    f"SELECT * FROM ((SELECT {_RECORD_COLUMNS} FROM card.terminal_records "  # noqa: S608
    "WHERE app_serial = $1 AND status = 'accepted' AND txn_time >= $2 AND card_counter >= $3 "
    "AND balance_before IS NOT NULL ORDER BY card_counter LIMIT 1) UNION ALL "
    f"(SELECT {_RECORD_COLUMNS} FROM card.terminal_records "
    "WHERE app_serial = $1 AND status = 'suspended' AND reason = ANY($4::smallint[]) AND txn_time >= $2 "
    "AND card_counter >= $3 AND balance_before IS NOT NULL ORDER BY card_counter LIMIT 1)) r "
    "ORDER BY card_counter LIMIT 1"
)
# The loads of the card at one online counter: the one not reversed (at most one: the partial
# unique index of migration 0101), and how many reversed (migration 0103's index).
_AT_COUNTER_SQL: Final = (
    "SELECT (SELECT load_id FROM card.terminal_loads WHERE app_serial = $1 AND online_counter = $2 "
    "AND state <> 'reversed') AS holder, (SELECT count(*) FROM card.terminal_loads "
    "WHERE app_serial = $1 AND online_counter = $2 AND state = 'reversed') AS reversed"
)


@dataclass(frozen=True, slots=True)
class OpenLoad:
    load_id: uuid.UUID
    terminal_id: str
    app_serial: bytes
    amount: int
    balance_before: int
    online_counter: int
    created_at: dt.datetime
    state: str

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> OpenLoad:
        return cls(
            load_id=r["load_id"],
            terminal_id=str(r["terminal_id"]),
            app_serial=bytes(r["app_serial"]),
            amount=int(r["amount"]),
            balance_before=int(r["balance_before"]),
            online_counter=int(r["online_counter"]),
            created_at=r["created_at"],
            state=str(r["state"]),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "load_id": str(self.load_id),
            "terminal_id": self.terminal_id,
            "app_serial": self.app_serial.hex(),
            "amount": self.amount,
            "balance_before": self.balance_before,
            "online_counter": self.online_counter,
            "created_at": self.created_at.isoformat(),
            "state": self.state,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    credited: bool
    note: str  # what the card showed, kept in card.terminal_loads.resolution
    doubtful: bool = False  # credited, but at a counter several reversed loads share (module doc)


@dataclass(frozen=True, slots=True)
class Outcome:
    load: OpenLoad
    # confirmed, reversed (by this run), resolved (already, meanwhile), refused, doubtful, open;
    # for a reversed load: reinstated (posted after all), upheld (the card bears the reversal out)
    result: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {**self.load.as_dict(), "result": self.result, "detail": self.detail}


async def evidence_for(db: Pool | Connection, load: OpenLoad) -> Evidence | None:
    """What the card's later activity says of ``load`` (module doc); None: nothing yet."""
    later = await db.fetchrow(_LATER_LOAD_SQL, load.app_serial, load.online_counter)
    if later is not None:
        return Evidence(
            True,
            f"evidence: the card's load {later['load_id']} at online counter {later['online_counter']} "
            f"(this load's was {load.online_counter})",
        )
    since = load.created_at.replace(microsecond=0)  # records are dated to the second
    first = await db.fetchrow(_FIRST_RECORD_SQL, load.app_serial, since, 0, TRUSTED_SUSPENDED)
    if first is None:
        return None
    counter, before = int(first["card_counter"]), int(first["balance_before"])
    previous = None
    if counter > 0:
        previous = await db.fetchrow(
            _FIRST_RECORD_SQL, load.app_serial, dt.datetime.min.replace(tzinfo=dt.UTC), counter - 1,
            TRUSTED_SUSPENDED,
        )  # fmt: skip
        if previous is not None and int(previous["card_counter"]) != counter - 1:
            previous = None  # not uploaded (yet)
    # The record before: ended at this load's balance before, and dated before the load.
    joined = previous is not None and (
        int(previous["balance_before"]) - int(previous["amount"]) == load.balance_before
        and previous["txn_time"] < since
    )
    record = f"record {first['terminal_id']}/{first['terminal_serial']} (card counter {counter})"
    if before == load.balance_before + load.amount and (previous is None or joined):
        return Evidence(True, f"evidence: {record} has balance before {before}, this load's plus its amount")
    complete = joined or (counter == 0 and previous is None)
    if before == load.balance_before and int(first["amount"]) > 0 and complete:
        return Evidence(False, f"evidence: {record} has balance before {before}, this load's: not credited")
    return None


async def reversal_evidence_for(db: Pool | Connection, load: OpenLoad) -> Evidence | None:
    """What the card's later activity says of the reversed ``load`` (module doc): a load of the
    card at its counter that is not reversed bears the reversal out; evidence of a credit is
    doubtful when other reversed loads share the counter. None: nothing yet."""
    at = await db.fetchrow(_AT_COUNTER_SQL, load.app_serial, load.online_counter)
    assert at is not None  # a SELECT of two scalar subqueries: one row
    if at["holder"] is not None:
        return Evidence(
            False,
            f"evidence: the card's load {at['holder']} at the same online counter {load.online_counter} "
            "(the counter did not move with this one)",
        )
    evidence = await evidence_for(db, load)
    if evidence is None or not evidence.credited or int(at["reversed"]) <= 1:
        return evidence
    return Evidence(
        True,
        f"{evidence.note}; {at['reversed']} reversed loads at online counter {load.online_counter}, "
        "only one of which the card can have taken",
        doubtful=True,
    )
