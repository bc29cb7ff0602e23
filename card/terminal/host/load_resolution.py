"""Loads the kiosk left 'authorised' (docs/terminal-protocol.md §6): resolved on the card's evidence.

A kiosk that got MAC2, credited the card and died before LOAD CONFIRM (or that never sent its
REVERSAL) leaves the load 'authorised': its money reserved in the ledger (a pending transfer,
with no timeout) and the card's online counter taken. The host never guesses: it resolves such a
load only on what the card itself later showed.

* **Credited** — a later LOAD of the card at a higher online counter (MAC1 under the card's key
  covers the counter, and a card's online counter moves only with CREDIT FOR LOAD, card-protocol
  §1.6: the counter this load held was used), or the card's first offline record after the load
  whose balance before is the load's balance before plus its amount. → the reservation is
  posted, the load 'confirmed' (new balance: before + amount, no TAC), the counter moved on.
* **Not credited** — the card's first offline record after the load whose balance before is the
  load's balance before, when no record can be missing in between: the record before it by the
  card's counter was uploaded, dated before the load and ended at that balance (or it is the
  card's first purchase, counter 0). MAC2 is good only in the load's own session, which the
  purchase ended, so the card can no longer be credited with it. → the reservation is voided,
  the load 'reversed' (its counter free for the card's next load).

Offline records count as evidence when their TAC was verified: accepted ones, and those
suspended after that check (the ledger refused the debit, which is exactly what a pending credit
causes; the card was listed). "After the load" is by the record's time against the host's, to the
second; a record's predecessor must end at the load's balance before, which catches a reader
whose clock ran ahead (a record before the load dated after it continues its own chain instead).

Without evidence a load stays 'authorised'; past ``doubtful_after`` it is **doubtful**: listed for
the operators (admin API), who resolve it explicitly (post or void, audited), never contrary to
evidence found meanwhile.

Each resolution is one statement with the locks of LOAD CONFIRM in the same order (the load's
row, then the ledger's): a kiosk's CONFIRM or REVERSAL arriving at the same moment is either
first (the resolution then finds the load resolved and does nothing) or finds it resolved
(``LOAD_STATE``); running the job twice, or two jobs at once, resolves each load once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg

from card._db import Connection, Pool
from card.audit import Actor, DetailValue
from card.terminal.host.ports import LedgerPostings
from card.terminal.host.registry import audit_terminal
from card.terminal.spec import RecordReason

__all__ = [
    "Evidence",
    "LoadNotDoubtful",
    "LoadNotFound",
    "OpenLoad",
    "Outcome",
    "doubtful_loads",
    "evidence_for",
    "resolve_by_operator",
    "resolve_open_loads",
    "settle_load",
]

# Records suspended only after their TAC was verified: the card's own word on its balance.
TRUSTED_SUSPENDED: Final = [int(RecordReason.LEDGER_REFUSED), int(RecordReason.BLACKLISTED)]

_LOAD_COLUMNS: Final = (
    "load_id, terminal_id, app_serial, amount, balance_before, online_counter, created_at, state"
)
_OPEN_SQL: Final = (
    f"SELECT {_LOAD_COLUMNS} FROM card.terminal_loads WHERE state = 'authorised' "  # noqa: S608
    "AND created_at <= $1 ORDER BY created_at LIMIT $2"
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
# The load locked, then the ledger's post or void ({call}: $3…) if it is still authorised, then
# the load resolved (and, posted, the card's online counter moved on): LOAD CONFIRM's order.
_POST_SQL: Final = (
    "WITH this_load AS MATERIALIZED (SELECT l.state, l.online_counter, e.card_id FROM card.terminal_loads l "
    "LEFT JOIN card.cards c ON c.app_serial = l.app_serial LEFT JOIN card.epurses e ON e.card_id = c.id "
    "WHERE l.load_id = $1 FOR UPDATE OF l), "
    "posted AS MATERIALIZED (SELECT {call} AS result FROM this_load WHERE state = 'authorised'), "
    "confirmed AS (UPDATE card.terminal_loads SET state = 'confirmed', "
    "new_balance = balance_before + amount, resolved_at = now(), resolution = $2 "
    "WHERE load_id = $1 AND EXISTS (SELECT FROM posted)), "
    "counter AS (UPDATE card.epurses e "
    "SET online_counter = GREATEST(e.online_counter, least(this_load.online_counter + 1, 65535)) "
    "FROM this_load WHERE e.card_id = this_load.card_id AND EXISTS (SELECT FROM posted)) "
    "SELECT state FROM this_load"
)
_VOID_SQL: Final = (
    "WITH this_load AS MATERIALIZED (SELECT state FROM card.terminal_loads WHERE load_id = $1 FOR UPDATE), "
    "voided AS MATERIALIZED (SELECT {call} AS result FROM this_load WHERE state = 'authorised'), "
    "reversed AS (UPDATE card.terminal_loads SET state = 'reversed', resolved_at = now(), resolution = $2 "
    "WHERE load_id = $1 AND EXISTS (SELECT FROM voided)) "
    "SELECT state FROM this_load"
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
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    credited: bool
    note: str  # what the card showed, kept in card.terminal_loads.resolution


@dataclass(frozen=True, slots=True)
class Outcome:
    load: OpenLoad
    result: str  # confirmed, reversed (by this run), resolved (already, meanwhile), refused, doubtful, open
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


async def settle_load(
    db: Pool | Connection, ledger: LedgerPostings, load_id: uuid.UUID, *, post: bool, resolution: str
) -> str | None:
    """Post or void the load's reservation and resolve it, if it is still authorised once locked.
    The load's state as locked ('authorised': resolved now), None for no such load; a ledger
    refusal raises (``LedgerPostings.refusal`` reads it) and the statement changes nothing."""
    call = ledger.resolve_load_call(load_id, post=post, first=3)
    sql = (_POST_SQL if post else _VOID_SQL).format(call=call.sql)
    state = await db.fetchval(sql, load_id, resolution, *call.args)
    return None if state is None else str(state)


async def doubtful_loads(
    db: Pool | Connection, *, older_than: dt.datetime, limit: int = 500
) -> list[OpenLoad]:
    """Authorised loads created before ``older_than`` (the oldest first)."""
    return [OpenLoad.from_row(r) for r in await db.fetch(_OPEN_SQL, older_than, limit)]


async def resolve_open_loads(
    pool: Pool,
    ledger: LedgerPostings,
    *,
    now: dt.datetime,
    resolve_after: dt.timedelta,
    doubtful_after: dt.timedelta,
    limit: int = 10_000,
) -> list[Outcome]:
    """One pass over the loads authorised for longer than ``resolve_after``: each resolved on
    evidence, or reported doubtful (past ``doubtful_after``) or still open. Re-runnable."""
    outcomes: list[Outcome] = []
    for load in await doubtful_loads(pool, older_than=now - resolve_after, limit=limit):
        evidence = await evidence_for(pool, load)
        if evidence is None:
            doubtful = load.created_at <= now - doubtful_after
            outcomes.append(Outcome(load, "doubtful" if doubtful else "open", "no evidence yet"))
            continue
        try:
            state = await settle_load(
                pool, ledger, load.load_id, post=evidence.credited, resolution=evidence.note
            )
        except asyncpg.PostgresError as exc:
            reason = ledger.refusal(exc)
            if reason is None:
                raise
            outcomes.append(Outcome(load, "refused", f"the ledger refused: {reason}"))
            continue
        if state == "authorised":
            outcomes.append(Outcome(load, "confirmed" if evidence.credited else "reversed", evidence.note))
        else:
            outcomes.append(Outcome(load, "resolved", f"{state} meanwhile"))
    return outcomes


class LoadNotFound(LookupError):
    problem_type = "load-not-found"
    problem_title = "No such load"
    problem_status = 404


class LoadNotDoubtful(ValueError):
    """Not an authorised load past the doubtful age, or the card's evidence says otherwise."""

    problem_type = "load-not-doubtful"
    problem_title = "The load cannot be resolved so"
    problem_status = 409


async def resolve_by_operator(
    pool: Pool,
    ledger: LedgerPostings,
    load_id: uuid.UUID,
    *,
    post: bool,
    note: str,
    actor: Actor,
    doubtful_after: dt.timedelta,
) -> OpenLoad:
    """An operator's post (``post``) or void of a doubtful load, audited (``card.terminal.load.post``
    or ``.void``, target the kiosk) in the resolution's transaction; a refusal is audited too.
    Refused: no such load (``LoadNotFound``); not authorised, not yet doubtful, or contrary to the
    card's evidence (``LoadNotDoubtful``); a ledger refusal (``LoadNotDoubtful``, its reason)."""
    verb = "load.post" if post else "load.void"
    details: dict[str, DetailValue] = {"load_id": str(load_id), "note": note}
    async with pool.acquire() as db:
        row = await db.fetchrow(
            f"SELECT {_LOAD_COLUMNS}, now() AS now FROM card.terminal_loads WHERE load_id = $1",  # noqa: S608
            load_id,
        )
        load = None if row is None else OpenLoad.from_row(row)
        refused: Exception | None = None
        if load is None:
            refused = LoadNotFound(str(load_id))
        else:
            details["amount"] = load.amount
            assert row is not None
            evidence = await evidence_for(db, load)
            if load.state != "authorised":
                refused = LoadNotDoubtful(f"the load is {load.state}")
            elif load.created_at > row["now"] - doubtful_after:
                refused = LoadNotDoubtful("the load is not yet doubtful: the kiosk may still confirm it")
            elif evidence is not None and evidence.credited != post:
                refused = LoadNotDoubtful(f"contrary to the card's {evidence.note}")
            else:
                refused = await _operator_settle(
                    db, ledger, load, post=post, actor=actor, verb=verb, details=details
                )
        if refused is None:
            assert load is not None
            return load
        await audit_terminal(
            db, actor, verb, None if load is None else load.terminal_id,
            {**details, "refused": str(refused)}, outcome="failure",
        )  # fmt: skip
        raise refused


async def _operator_settle(
    db: Connection,
    ledger: LedgerPostings,
    load: OpenLoad,
    *,
    post: bool,
    actor: Actor,
    verb: str,
    details: dict[str, DetailValue],
) -> Exception | None:
    """The resolution and its audit entry in one transaction; the refusal, if any (nothing changed)."""
    note = f"operator {actor.id}: {details['note']}"
    try:
        async with db.transaction():
            state = await settle_load(db, ledger, load.load_id, post=post, resolution=note)
            if state != "authorised":
                return LoadNotDoubtful(f"the load is {state}")  # resolved meanwhile; nothing written
            await audit_terminal(db, actor, verb, load.terminal_id, details)
    except asyncpg.PostgresError as exc:
        reason = ledger.refusal(exc)
        if reason is None:
            raise
        return LoadNotDoubtful(f"the ledger refused: {reason}")
    return None
