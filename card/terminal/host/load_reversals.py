"""Reversed loads the card's later evidence contradicts (docs/terminal-protocol.md §6.2).

A REVERSAL is the kiosk's word that the card was not credited. After a torn CREDIT FOR LOAD (the
kiosk got no answer) the card may hold the credit all the same (card-protocol.md §1.7, GET
TRANSACTION PROVE): a kiosk that reversed without asking the card voided money the card has. The
host keeps looking at a reversed load until the card's own evidence settles it
(``load_evidence.reversal_evidence_for``, migration 0103):

* **Credited** — the load is **reinstated**: a second transfer, posted at once (id
  ``uuid5(load_id, 'reinstated')``, so a repeat moves nothing twice), from the same kiosk's
  clearing account to the card's e-purse, the load 'confirmed' (new balance: before + amount,
  ``resolution`` the evidence), the card's online counter moved on, and an audit entry
  ``card.terminal.load.reinstate`` (actor: the system) in the same transaction; logged as a warning
  for the kiosk's operator. Posting, not merely flagging, is what keeps the ledger equal to the
  card: the card has spent-able money the ledger would otherwise never back, and the kiosk's
  clearing account owes it as it would have with a CONFIRM. A LOAD at the next online counter
  does this at once for the reversed loads at the counter before (the card can only have moved
  its counter through one of them); the resolution job does it for any other.
* **Doubtful** — evidence of a credit at a counter several reversed loads share: which one the
  card took the host cannot tell. ``reversal_doubt`` is set; the load is listed for operators, who
  post it (reinstated, audited ``load.post``) or uphold the reversal (audited ``load.void``).
* **Not credited** — ``reversal_evidence`` keeps the evidence (the reversal is **upheld**); the
  job stops looking at the load.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

import asyncpg

from card._db import Connection, Pool
from card.audit import SYSTEM, Actor, DetailValue
from card.terminal.host.load_evidence import LOAD_COLUMNS, OpenLoad, Outcome, reversal_evidence_for
from card.terminal.host.ports import reinstate_load_txn
from card.terminal.host.registry import audit_terminal

__all__ = [
    "check_reversed_loads",
    "reinstate_before",
    "resolve_reversed_by_operator",
    "settle_reversed",
]

log = logging.getLogger("citizen.terminal")

_UNSETTLED: Final = "state = 'reversed' AND reversal_evidence IS NULL"
_UNSETTLED_SQL: Final = (
    f"SELECT {LOAD_COLUMNS} FROM card.terminal_loads WHERE {_UNSETTLED} "  # noqa: S608
    "AND created_at <= $1 ORDER BY created_at LIMIT $2"
)
_AT_COUNTER_SQL: Final = (
    f"SELECT {LOAD_COLUMNS} FROM card.terminal_loads WHERE app_serial = $1 "  # noqa: S608
    f"AND online_counter = $2 AND {_UNSETTLED} ORDER BY created_at"
)
DOUBTFUL_SQL: Final = (
    f"SELECT {LOAD_COLUMNS} FROM card.terminal_loads WHERE {_UNSETTLED} "  # noqa: S608
    "AND reversal_doubt IS NOT NULL ORDER BY created_at LIMIT $1"
)
_LOCK_SQL: Final = (
    "SELECT l.state, t.operator, e.card_id, e.ledger_account_id FROM card.terminal_loads l "
    "JOIN card.terminals t ON t.id = l.terminal_id LEFT JOIN card.cards c ON c.app_serial = l.app_serial "
    "LEFT JOIN card.epurses e ON e.card_id = c.id WHERE l.load_id = $1 FOR UPDATE OF l"
)
_REINSTATED_SQL: Final = (
    "UPDATE card.terminal_loads SET state = 'confirmed', new_balance = balance_before + amount, "
    "resolved_at = now(), resolution = $2, reversal_evidence = $2, reversal_doubt = NULL WHERE load_id = $1"
)
_COUNTER_SQL: Final = (
    "UPDATE card.epurses SET online_counter = GREATEST(online_counter, least($2 + 1, 65535)) "
    "WHERE card_id = $1"
)
_UPHELD_SQL: Final = (
    "UPDATE card.terminal_loads SET reversal_evidence = $2, reversal_doubt = NULL "  # noqa: S608
    f"WHERE load_id = $1 AND {_UNSETTLED} RETURNING load_id"
)
_DOUBT_SQL: Final = f"UPDATE card.terminal_loads SET reversal_doubt = $2 WHERE load_id = $1 AND {_UNSETTLED}"  # noqa: S608


class _Refused(Exception):
    """Rolls the reinstatement's transaction back; its message is the reason."""


async def _reinstate(db: Connection, load: OpenLoad, note: str, *, actor: Actor, verb: str) -> str | None:
    """Post the reversed ``load`` after all, in one transaction with its audit entry (module doc).
    The reason it was not (nothing changed), or None."""
    try:
        async with db.transaction():
            await _reinstate_txn(db, load, note, actor=actor, verb=verb)
    except _Refused as exc:
        return str(exc)
    except asyncpg.UniqueViolationError:
        return "another load holds the card counter"
    return None


async def _reinstate_txn(db: Connection, load: OpenLoad, note: str, *, actor: Actor, verb: str) -> None:
    # The load's row first, then the ledger's: LOAD CONFIRM's lock order.
    row = await db.fetchrow(_LOCK_SQL, load.load_id)
    if row is None or row["state"] != "reversed":
        raise _Refused(f"the load is {None if row is None else row['state']}")
    if row["ledger_account_id"] is None:
        raise _Refused("the card has no e-purse account")
    refused = await reinstate_load_txn(
        db,
        load.load_id,
        operator=row["operator"],
        terminal_id=load.terminal_id,
        epurse=row["ledger_account_id"],
        amount=load.amount,
    )
    if refused is not None:
        raise _Refused(f"the ledger refused: {refused}")
    # Back into the card counter index (0101): a load not reversed at this counter meanwhile
    # would say the card did not take this one, and the update fails (UniqueViolationError).
    await db.execute(_REINSTATED_SQL, load.load_id, note)
    await db.execute(_COUNTER_SQL, row["card_id"], load.online_counter)
    details: dict[str, DetailValue] = {"load_id": str(load.load_id), "amount": load.amount, "note": note}
    await audit_terminal(db, actor, verb, load.terminal_id, details)


async def settle_reversed(pool: Pool, load: OpenLoad) -> Outcome | None:
    """The reversed ``load`` settled on the card's evidence as the module doc says; None: no
    evidence yet (nothing written)."""
    async with pool.acquire() as db:
        evidence = await reversal_evidence_for(db, load)
        if evidence is None:
            return None
        if not evidence.credited:
            await db.execute(_UPHELD_SQL, load.load_id, evidence.note)
            return Outcome(load, "upheld", evidence.note)
        if evidence.doubtful:
            await db.execute(_DOUBT_SQL, load.load_id, evidence.note)
            return Outcome(load, "doubtful", evidence.note)
        note = f"{evidence.note}: the kiosk's reversal is contradicted, reinstated"
        refused = await _reinstate(db, load, note, actor=SYSTEM, verb="load.reinstate")
    if refused is not None:
        return Outcome(load, "refused", f"not reinstated: {refused}")
    log.warning(
        "load %s of %s reversed by kiosk %s was credited by the card: reinstated (%s)",
        load.load_id, load.app_serial.hex(), load.terminal_id, evidence.note,
    )  # fmt: skip
    return Outcome(load, "reinstated", note)


async def reinstate_before(pool: Pool, app_serial: bytes, online_counter: int) -> list[Outcome]:
    """At a LOAD whose MAC1 showed the card at ``online_counter``: settle the card's unsettled
    reversed loads at the counter before (the card moved its counter through one of them)."""
    if online_counter <= 0:
        return []
    async with pool.acquire() as db:
        rows = await db.fetch(_AT_COUNTER_SQL, app_serial, online_counter - 1)
    return [o for r in rows if (o := await settle_reversed(pool, OpenLoad.from_row(r))) is not None]


async def check_reversed_loads(pool: Pool, *, older_than: dt.datetime, limit: int) -> list[Outcome]:
    """The resolution job's pass over the unsettled reversed loads (the oldest first): the ones the
    card's evidence settled, reinstated or left doubtful; those with no evidence yet are not
    reported (most reversals are true, and the card may not be seen for months)."""
    async with pool.acquire() as db:
        rows = await db.fetch(_UNSETTLED_SQL, older_than, limit)
    return [o for r in rows if (o := await settle_reversed(pool, OpenLoad.from_row(r))) is not None]


async def resolve_reversed_by_operator(
    db: Connection, load: OpenLoad, *, post: bool, actor: Actor, verb: str, details: dict[str, DetailValue]
) -> str | None:
    """An operator's post (reinstatement) of a doubtful reversed load, or their upholding of its
    reversal, audited; the reason it was refused (nothing changed), or None."""
    evidence = await reversal_evidence_for(db, load)
    if evidence is None:
        return "not a doubtful reversed load"
    # Never contrary to the evidence: a post needs the doubt; upholding also fits evidence that the
    # card did not take this load (e.g. once another load at its counter was posted).
    if not evidence.doubtful and (post or evidence.credited):
        return f"the card's {evidence.note} settles it"
    note = f"operator {actor.id}: {details['note']}"
    if post:
        return await _reinstate(db, load, note, actor=actor, verb=verb)
    async with db.transaction():
        if await db.fetchval(_UPHELD_SQL, load.load_id, note) is None:
            return "the load is settled"
        await audit_terminal(db, actor, verb, load.terminal_id, details)
    return None
