"""Loads the kiosk left 'authorised' (docs/terminal-protocol.md §6.1): resolved on the card's evidence.

A kiosk that got MAC2, credited the card and died before LOAD CONFIRM (or that never sent its
REVERSAL) leaves the load 'authorised': its money reserved in the ledger (a pending transfer,
with no timeout) and the card's online counter taken. The host never guesses: it resolves such a
load only on what the card itself later showed (``load_evidence``):

* **Credited** → the reservation is posted, the load 'confirmed' (new balance: before + amount,
  no TAC), the counter moved on.
* **Not credited** → the reservation is voided, the load 'reversed' (its counter free for the
  card's next load; ``reversal_evidence`` keeps the evidence, so the reversal needs no second look).

Without evidence a load stays 'authorised'; past ``doubtful_after`` it is **doubtful**: listed for
the operators (admin API), who resolve it explicitly (post or void, audited), never contrary to
evidence found meanwhile. The same job and list cover the reversed loads the card's later
evidence contradicts (``load_reversals``, §6.2).

Each resolution is one statement with the locks of LOAD CONFIRM in the same order (the load's
row, then the ledger's): a kiosk's CONFIRM or REVERSAL arriving at the same moment is either
first (the resolution then finds the load resolved and does nothing) or finds it resolved
(``LOAD_STATE``); running the job twice, or two jobs at once, resolves each load once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

import asyncpg

from card._db import Connection, Pool
from card.audit import Actor, DetailValue
from card.terminal.host.load_evidence import LOAD_COLUMNS, Evidence, OpenLoad, Outcome, evidence_for
from card.terminal.host.load_reversals import (
    DOUBTFUL_SQL,
    check_reversed_loads,
    resolve_reversed_by_operator,
)
from card.terminal.host.ports import LedgerPostings
from card.terminal.host.registry import audit_terminal

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

_OPEN_SQL: Final = (
    f"SELECT {LOAD_COLUMNS} FROM card.terminal_loads WHERE state = 'authorised' "  # noqa: S608
    "AND created_at <= $1 ORDER BY created_at LIMIT $2"
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
# A void on the card's evidence ($3: the same note) needs no second look (load_reversals); one
# by an operator without evidence ($3 NULL) is looked at again as the card shows more.
_VOID_SQL: Final = (
    "WITH this_load AS MATERIALIZED (SELECT state FROM card.terminal_loads WHERE load_id = $1 FOR UPDATE), "
    "voided AS MATERIALIZED (SELECT {call} AS result FROM this_load WHERE state = 'authorised'), "
    "reversed AS (UPDATE card.terminal_loads SET state = 'reversed', resolved_at = now(), resolution = $2, "
    "reversal_evidence = $3 WHERE load_id = $1 AND EXISTS (SELECT FROM voided)) "
    "SELECT state FROM this_load"
)


async def settle_load(
    db: Pool | Connection,
    ledger: LedgerPostings,
    load_id: uuid.UUID,
    *,
    post: bool,
    resolution: str,
    on_evidence: bool = False,
) -> str | None:
    """Post or void the load's reservation and resolve it, if it is still authorised once locked.
    The load's state as locked ('authorised': resolved now), None for no such load; a ledger
    refusal raises (``LedgerPostings.refusal`` reads it) and the statement changes nothing.
    ``on_evidence``: ``resolution`` is the card's evidence (a void then settles the reversal)."""
    if post:
        call = ledger.resolve_load_call(load_id, post=True, first=3)
        state = await db.fetchval(_POST_SQL.format(call=call.sql), load_id, resolution, *call.args)
    else:
        call = ledger.resolve_load_call(load_id, post=False, first=4)
        evidence = resolution if on_evidence else None
        state = await db.fetchval(_VOID_SQL.format(call=call.sql), load_id, resolution, evidence, *call.args)
    return None if state is None else str(state)


async def doubtful_loads(
    db: Pool | Connection, *, older_than: dt.datetime, limit: int = 500
) -> list[OpenLoad]:
    """Authorised loads created before ``older_than`` (the oldest first), then the reversed loads
    whose reversal the card's evidence put in doubt (``load_reversals``)."""
    rows = [*await db.fetch(_OPEN_SQL, older_than, limit), *await db.fetch(DOUBTFUL_SQL, limit)]
    return [OpenLoad.from_row(r) for r in rows]


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
    evidence, or reported doubtful (past ``doubtful_after``) or still open; then over the reversed
    loads, those the card's evidence settled or put in doubt (``load_reversals``). Re-runnable."""
    outcomes: list[Outcome] = []
    for row in await pool.fetch(_OPEN_SQL, now - resolve_after, limit):
        load = OpenLoad.from_row(row)
        evidence = await evidence_for(pool, load)
        if evidence is None:
            doubtful = load.created_at <= now - doubtful_after
            outcomes.append(Outcome(load, "doubtful" if doubtful else "open", "no evidence yet"))
            continue
        try:
            state = await settle_load(
                pool, ledger, load.load_id, post=evidence.credited, resolution=evidence.note, on_evidence=True
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
    return outcomes + await check_reversed_loads(pool, older_than=now - resolve_after, limit=limit)


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
    or ``.void``, target the kiosk) in the resolution's transaction; a refusal is audited too. A
    doubtful reversed load is reinstated (post) or its reversal upheld (void).
    Refused: no such load (``LoadNotFound``); not authorised, not yet doubtful, or contrary to the
    card's evidence (``LoadNotDoubtful``); a ledger refusal (``LoadNotDoubtful``, its reason)."""
    verb = "load.post" if post else "load.void"
    details: dict[str, DetailValue] = {"load_id": str(load_id), "note": note}
    async with pool.acquire() as db:
        row = await db.fetchrow(
            f"SELECT {LOAD_COLUMNS}, now() AS now FROM card.terminal_loads WHERE load_id = $1",  # noqa: S608
            load_id,
        )
        load = None if row is None else OpenLoad.from_row(row)
        refused: Exception | None = None
        if load is None:
            refused = LoadNotFound(str(load_id))
        else:
            details["amount"] = load.amount
            assert row is not None
            if load.state == "reversed":  # a reversal the card's evidence put in doubt (load_reversals)
                reason = await resolve_reversed_by_operator(
                    db, load, post=post, actor=actor, verb=verb, details=details
                )
                refused = None if reason is None else LoadNotDoubtful(reason)
            elif load.state != "authorised":
                refused = LoadNotDoubtful(f"the load is {load.state}")
            elif load.created_at > row["now"] - doubtful_after:
                refused = LoadNotDoubtful("the load is not yet doubtful: the kiosk may still confirm it")
            elif (evidence := await evidence_for(db, load)) is not None and evidence.credited != post:
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
