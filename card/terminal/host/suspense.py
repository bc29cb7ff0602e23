"""The suspense queue (docs/terminal-protocol.md §5.4): listed, and resolved by an operator.

An uploaded record that fails a host check is stored ``suspended`` with a queue entry
(``batch_commit``); nothing was charged. An operator (``support`` or ``security_admin``) resolves
each open entry once, with a note:

* **reject** (write off): the record stays ``suspended``, the entry is resolved; nothing is charged.
* **accept**: the record is a genuine card debit the host held for a business reason, and it is
  charged after all. Only these reasons qualify:

  - ``CLOCK_DRIFT``: the reader's clock was wrong (or its upload late); the card did sign the
    debit at the time the record names, which its TAC covers. The upload never checked that TAC
    (the time check comes first), so the accept is the first check of it.
  - ``BLACKLISTED``: the card was listed in a version the reader had, and the reader let it ride
    anyway; the debit is real and the operator decides whether the city collects it.
  - ``LEDGER_REFUSED``: the e-purse refused the debit (beyond its overdraft limit, or no account
    yet); once the purse can take it (a load, an account opened) the ledger is asked again.

  Every other reason means the host cannot tell the record is a real debit of that card, or that
  it is not already charged: ``BAD_TAC``, ``BAD_QR_TAC``, ``QR_INVALID``, ``MALFORMED``,
  ``UNKNOWN_KEY_VERSION``, ``UNKNOWN_CARD`` (no card to verify or charge), ``DUPLICATE_CARD_COUNTER``
  (another record holds the card transaction) and ``BALANCE`` (reserved, never sent). Those are
  rejected only (``SuspenseNotAcceptable``).

An accept first runs the upload's own checks (``record_checks``) again on the record **as stored**
(its TLV in ``terminal_records.record``) with the keys of now: structure, the terminal's PSAM
number, the card, its key version and the TAC (QR: the QR and the reader's MAC under the
terminal's current master key, so a QR ride from before a re-key can only be rejected). The
stored columns must agree with that TLV. A record that fails is refused
(``SuspenseRecordUnverified``): an accept can never post a forged or altered record. Then, in one
transaction: the entry and the record locked (``FOR UPDATE``; a second operator waits and finds it
resolved), the record ``accepted`` (the partial unique index on (card, counter, type) refuses a
card transaction another accepted record holds: ``SuspenseCardCounterTaken``), the card's offline
counter moved on, the fare posted through ``LedgerPostings`` (the batch upload's transfer id, so
the ledger too holds each card transaction once; a refusal is ``SuspenseLedgerRefused`` and
nothing changes), the record's ``transfer_id`` set, the entry resolved and the audit entry
(``card.terminal.suspense.resolve``) written. The batch's counts and the terminal's settlement
totals stay as the upload answered them. A refusal is audited too, on its own (``failure``).
The audit entry holds the note's SHA-256, never its text (it stays in the queue entry).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg

from card._db import Connection, Pool
from card.audit import Actor, DetailValue
from card.keys import CardKeyStore
from card.settings import CardSettings
from card.terminal.host.batch_commit import Work
from card.terminal.host.ports import CardDirectory, LedgerPostings
from card.terminal.host.record_checks import (
    CARD_KINDS,
    check_psam,
    check_qr,
    check_structure,
    match_cards,
    qr_verifier,
)
from card.terminal.host.registry import TerminalRegistry, audit_terminal
from card.terminal.host.suspense_records import StoredRecord, stored_record
from card.terminal.messages import record_key
from card.terminal.spec import RecordKind, RecordReason

__all__ = [
    "ACCEPTABLE",
    "NOTE_MAX",
    "Resolution",
    "SuspenseCardCounterTaken",
    "SuspenseLedgerRefused",
    "SuspenseNotAcceptable",
    "SuspenseNotFound",
    "SuspenseRecordUnverified",
    "SuspenseRefused",
    "SuspenseResolved",
    "SuspenseResolver",
    "list_suspense",
]

ACCEPTABLE: Final = frozenset(
    (RecordReason.CLOCK_DRIFT, RecordReason.BLACKLISTED, RecordReason.LEDGER_REFUSED)
)
NOTE_MAX: Final = 500
_TERMINAL_ID: Final = re.compile(r"^[0-9A-Z-]{1,16}$")  # as card.terminals.id
_SERIAL_MAX: Final = 0xFFFF_FFFF  # DF41 is a u32
# The ledger's answers when a transfer with this card transaction's id exists (one per card,
# counter: ``payments.posting.transaction_key``): charged already, by another record.
_HELD_BY_LEDGER: Final = frozenset(("exists", "exists_with_different_fields"))

_COLUMNS: Final = (
    "SELECT s.terminal_id, s.terminal_serial, s.reason, s.detail, s.state, s.created_at, s.resolved_at, "
    "s.decision, s.resolution, s.resolved_by, r.card_number, r.amount, r.kind, r.status, r.transfer_id "
    "FROM card.terminal_suspense s JOIN card.terminal_records r USING (terminal_id, terminal_serial) "
)
_LIST_SQL: Final = {
    "open": _COLUMNS + "WHERE s.state = 'open' ORDER BY s.created_at LIMIT $1",  # the oldest first: work
    "resolved": _COLUMNS + "WHERE s.state = 'resolved' ORDER BY s.resolved_at DESC LIMIT $1",
    "all": _COLUMNS + "ORDER BY s.created_at DESC LIMIT $1",
}


async def list_suspense(
    db: Pool | Connection, state: str = "open", limit: int = 500
) -> list[dict[str, object]]:
    """Entries by state (``open``, ``resolved`` or ``all``), with their resolution and whether an
    accept may be asked for (``acceptable``: the reason allows it and the entry is open)."""
    rows = await db.fetch(_LIST_SQL[state], limit)
    return [
        {**dict(r), "acceptable": r["state"] == "open" and _reason(r["reason"]) in ACCEPTABLE} for r in rows
    ]


def _reason(value: int) -> RecordReason | None:
    try:
        return RecordReason(value)
    except ValueError:
        return None


class SuspenseRefused(Exception):
    """A resolution refused; nothing changed. ``problem_*``: backend.errors' contract."""

    problem_type = "suspense-refused"
    problem_title = "The suspense entry cannot be resolved so"
    problem_status = 409


class InvalidResolution(SuspenseRefused):
    problem_type = "validation-error"
    problem_title = "The request is not valid"
    problem_status = 422


class SuspenseNotFound(SuspenseRefused):
    problem_type = "suspense-not-found"
    problem_title = "No such suspense entry"
    problem_status = 404


class SuspenseResolved(SuspenseRefused):
    problem_type = "suspense-resolved"
    problem_title = "The suspense entry is already resolved"


class SuspenseNotAcceptable(SuspenseRefused):
    problem_type = "suspense-not-acceptable"
    problem_title = "A record held for this reason can only be rejected"


class SuspenseRecordUnverified(SuspenseRefused):
    problem_type = "suspense-record-unverified"
    problem_title = "The stored record does not pass the host's checks"


class SuspenseCardCounterTaken(SuspenseRefused):
    problem_type = "suspense-card-counter-taken"
    problem_title = "The card transaction is already charged"


class SuspenseLedgerRefused(SuspenseRefused):
    problem_type = "suspense-ledger-refused"
    problem_title = "The ledger refused the debit"


@dataclass(frozen=True, slots=True)
class Resolution:
    terminal_id: str
    terminal_serial: int
    decision: Literal["accept", "reject"]
    reason: int
    amount: int
    transfer_id: uuid.UUID | None
    resolved_at: dt.datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "terminal_id": self.terminal_id,
            "terminal_serial": self.terminal_serial,
            "state": "resolved",
            "decision": self.decision,
            "reason": self.reason,
            "amount": self.amount,
            "record_status": "accepted" if self.decision == "accept" else "suspended",
            "transfer_id": None if self.transfer_id is None else str(self.transfer_id),
            "resolved_at": self.resolved_at.isoformat(),
        }


class SuspenseResolver:
    """Resolves suspense entries for operators; ``keys`` and ``card_settings`` as the gateway's."""

    def __init__(
        self,
        registry: TerminalRegistry,
        keys: CardKeyStore,
        card_settings: CardSettings,
        ledger: LedgerPostings | None = None,
    ) -> None:
        self.registry = registry
        self.pool = registry.pool
        self.keys = keys
        self.card_settings = card_settings
        self.ledger = ledger or LedgerPostings()
        self.cards = CardDirectory()

    async def resolve(
        self, terminal_id: str, serial: int, *, decision: str, note: str, actor: Actor
    ) -> Resolution:
        """Accept or reject the open entry of (``terminal_id``, ``serial``), audited either way."""
        known = _TERMINAL_ID.fullmatch(terminal_id) is not None and 0 <= serial <= _SERIAL_MAX
        note = note.strip()
        details: dict[str, DetailValue] = {"serial": serial}
        try:
            if decision not in {"accept", "reject"} or not 1 <= len(note) <= NOTE_MAX:
                raise InvalidResolution(
                    f"decision must be accept or reject, and a note of 1 to {NOTE_MAX} characters"
                )
            # The note stays in the queue entry (``resolution``): operators' notes may name
            # people, and the hash-chained audit log can never be redacted. Its digest binds the
            # audit entry to the stored note.
            details |= {"decision": decision, "note_sha256": hashlib.sha256(note.encode()).hexdigest()}
            if not known:
                raise SuspenseNotFound(f"no suspense entry {terminal_id}#{serial}")
            if decision == "reject":
                return await self._reject(terminal_id, serial, note, actor, details)
            return await self._accept(terminal_id, serial, note, actor, details)
        except SuspenseRefused as refused:
            async with self.pool.acquire() as db:
                await audit_terminal(
                    db, actor, "suspense.resolve", terminal_id if known else None,
                    {**details, "refused": refused.problem_type, "why": str(refused)[:200]},
                    outcome="failure",
                )  # fmt: skip
            raise

    async def _reject(
        self, terminal_id: str, serial: int, note: str, actor: Actor, details: dict[str, DetailValue]
    ) -> Resolution:
        async with self.pool.acquire() as db, db.transaction():
            entry = await self._locked(db, terminal_id, serial)
            resolved_at = await _resolve_entry(
                db, terminal_id, serial, decision="reject", note=note, actor=actor
            )
            details |= {"reason": _name(entry.reason), "amount": entry.amount}
            await audit_terminal(db, actor, "suspense.resolve", terminal_id, details)
        return Resolution(terminal_id, serial, "reject", entry.reason, entry.amount, None, resolved_at)

    async def _accept(
        self, terminal_id: str, serial: int, note: str, actor: Actor, details: dict[str, DetailValue]
    ) -> Resolution:
        # Read and verified before the transaction: the key store reads master keys through the
        # pool on first use, so no pooled connection is held while it works (as the batch upload).
        async with self.pool.acquire() as db:
            first = await stored_record(db, terminal_id, serial)
        if first is None:
            raise SuspenseNotFound(f"no suspense entry {terminal_id}#{serial}")
        details |= {"reason": _name(first.reason), "amount": first.amount}
        if first.state != "open":
            raise SuspenseResolved(f"resolved: {first.decision}")
        if _reason(first.reason) not in ACCEPTABLE:
            raise SuspenseNotAcceptable(f"held as {_name(first.reason)}: reject it")
        work = await self._verify(first)
        card = work.card
        assert card is not None and work.txn_time is not None
        async with self.pool.acquire() as db, db.transaction():
            entry = await self._locked(db, terminal_id, serial)
            if entry.raw != first.raw or entry.status != "suspended":
                raise SuspenseRecordUnverified("the stored record changed while it was checked")
            try:
                await db.execute(
                    "UPDATE card.terminal_records SET status = 'accepted', card_number = $3 "
                    "WHERE terminal_id = $1 AND terminal_serial = $2",
                    terminal_id, serial, card.card_number,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise SuspenseCardCounterTaken(
                    f"card counter {work.counter} is held by another accepted record"
                ) from None
            if work.record.kind != RecordKind.QR:  # the card made this transaction: its counter moved
                await self.cards.advance_counters_txn(db, [(card.card_id, work.counter + 1)], [])
            resolved_at = await _resolve_entry(
                db, terminal_id, serial, decision="accept", note=note, actor=actor
            )
            transfer_id = None
            if work.record.amount > 0:  # the ledger last: its writer lock is held to the commit
                if card.ledger_account_id is None:
                    raise SuspenseLedgerRefused("the card has no e-purse account")
                transfer_id, refused = await self.ledger.post_held_tap_txn(
                    db, card_id=card.card_id, counter=work.counter, amount=work.record.amount,
                    operator=entry.operator, occurred_at=work.txn_time, terminal_id=terminal_id,
                    epurse=card.ledger_account_id,
                )  # fmt: skip
                if refused in _HELD_BY_LEDGER:
                    raise SuspenseCardCounterTaken("the ledger already holds this card transaction")
                if refused is not None:
                    raise SuspenseLedgerRefused(f"the ledger refused: {refused}")
                await db.execute(
                    "UPDATE card.terminal_records SET transfer_id = $3 WHERE terminal_id = $1 "
                    "AND terminal_serial = $2",
                    terminal_id, serial, transfer_id,
                )  # fmt: skip
                details["transfer_id"] = str(transfer_id)
            await audit_terminal(db, actor, "suspense.resolve", terminal_id, details)
        return Resolution(
            terminal_id, serial, "accept", entry.reason, work.record.amount, transfer_id, resolved_at
        )

    @staticmethod
    async def _locked(db: Connection, terminal_id: str, serial: int) -> StoredRecord:
        """The entry and its record, locked; refused unless the entry is still open."""
        entry = await stored_record(db, terminal_id, serial, lock=True)
        if entry is None:
            raise SuspenseNotFound(f"no suspense entry {terminal_id}#{serial}")
        if entry.state != "open":
            raise SuspenseResolved(f"resolved: {entry.decision}")
        return entry

    async def _verify(self, stored: StoredRecord) -> Work:
        """The upload's checks again on the record as stored, with the keys of now: its card."""
        if stored.record is None:
            raise SuspenseRecordUnverified("the stored record does not decode")
        work = Work(stored.record)
        check_structure(work)
        check_psam(work, stored.psam_terminal_no)
        record = work.record
        if not work.reason and record.kind in CARD_KINDS:
            async with self.pool.acquire() as db:
                cards = await self.cards.by_app_serial(db, [record.app_serial])
            _, items = match_cards([work], cards, self.card_settings.issuer_id)
            if items and not (await self.keys.verify_purchase_tacs(items))[0]:
                work.reject(RecordReason.BAD_TAC)
        elif not work.reason:  # a QR ride: check_structure refused any other kind
            terminal = await self.registry.get(stored.terminal_id)
            assert terminal is not None  # the record's terminal (terminals are never deleted)
            validity = self.card_settings.qr_validity_seconds
            verifier = qr_verifier(
                await self.keys.qr_public_keys(), (self.card_settings.issuer_code,), validity
            )
            check_qr(work, verifier, record_key(terminal.tmk), validity)
            if work.card_number is not None:
                async with self.pool.acquire() as db:
                    work.card = (await self.cards.by_number(db, [work.card_number])).get(work.card_number)
                if work.card is None:
                    work.reject(RecordReason.UNKNOWN_CARD)
        if not work.reason and not stored.agrees(work):
            work.reject(RecordReason.MALFORMED, "the stored columns differ from the record as sent")
        if work.reason:
            raise SuspenseRecordUnverified(f"{work.reason.name}: {work.detail}".rstrip(": "))
        return work


def _name(reason: int) -> str:
    found = _reason(reason)
    return found.name if found is not None else str(reason)


async def _resolve_entry(
    db: Connection, terminal_id: str, serial: int, *, decision: str, note: str, actor: Actor
) -> dt.datetime:
    """The open entry resolved: when. The caller locked it open; the condition holds anyway."""
    resolved_at = await db.fetchval(
        "UPDATE card.terminal_suspense SET state = 'resolved', resolved_at = now(), decision = $3, "
        "resolution = $4, resolved_by = $5 WHERE terminal_id = $1 AND terminal_serial = $2 "
        "AND state = 'open' RETURNING resolved_at",
        terminal_id, serial, decision, note, actor.id or actor.kind,
    )  # fmt: skip
    if resolved_at is None:
        raise SuspenseResolved("resolved meanwhile")
    assert isinstance(resolved_at, dt.datetime)
    return resolved_at
