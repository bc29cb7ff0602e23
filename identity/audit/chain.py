"""Audit entries chained by SHA-256 (who, acting for whom, what, when, from where, which client, outcome).

``digest = sha256(canonical(entry))`` where ``canonical`` is a JSON array of the entry's fields in a
fixed order (details with sorted keys, times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), and
``hash = sha256(prev_hash || seq as 8 bytes big-endian || digest)``.

``record`` inserts the event with its digest into ``identity.audit_pending``: no shared row, no lock,
so audited transactions never wait for each other. A sealer (:mod:`identity.audit.sealer`: the app's
background task, ``citizen audit seal``) chains committed pending events into ``identity.audit_log``
in batches, assigning ``seq`` under the row lock of ``identity.audit_head`` (the database function
``identity.audit_seal``), so events from any number of processes form one chain, in sealing order.
``verify_chain`` recomputes every digest from the stored columns, so a changed, deleted, inserted or
reordered row breaks the chain at that row, and a removed tail shows against ``audit_head``; it counts
the events not sealed yet and checks their contents against the digests recorded with them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from identity._db import Connection, Record

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditEvent",
    "AuditReceipt",
    "ChainReport",
    "canonical_digest",
    "chain_hash",
    "entries_for",
    "on_record",
    "pending_insert",
    "pending_params",
    "record",
    "recorded",
    "verify_chain",
]

GENESIS = bytes(32)
_COLUMNS = (
    "seq, occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id, outcome, "
    "client_address, client_id, request_id, details::text AS details, prev_hash, hash"
)
_EVENT = (
    "occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id, outcome, "
    "client_address, client_id, request_id, details::text AS details"
)
_ALL = f"SELECT {_COLUMNS} FROM identity.audit_log ORDER BY seq"  # noqa: S608 - constants only
_PENDING = f"SELECT id, {_EVENT}, digest FROM identity.audit_pending ORDER BY id"  # noqa: S608
_SUBJECT = "WHERE actor_id = $1 OR target_id = $1 OR acting_for = $1"
# One statement, so one snapshot: an event sealed meanwhile is seen once, pending or sealed.
_BY_SUBJECT = (
    f"(SELECT NULL::bigint AS seq, {_EVENT}, NULL::bytea AS prev_hash, NULL::bytea AS hash,"  # noqa: S608
    f" id AS pending_id FROM identity.audit_pending {_SUBJECT} ORDER BY id DESC LIMIT $2)"
    f" UNION ALL (SELECT {_COLUMNS}, NULL::bigint FROM identity.audit_log {_SUBJECT}"
    " ORDER BY seq DESC LIMIT $2)"
    " ORDER BY seq DESC NULLS FIRST, pending_id DESC LIMIT $2"
)
_FORMAT = "citizen-audit/1"
_WAKERS: list[Callable[[], None]] = []

ActorKind = Literal["person", "operator", "system", "anonymous"]
Outcome = Literal["success", "failure", "denied"]
DetailValue = str | int | bool | None | list[str]


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that happened. ``details`` must not hold ID numbers, mobiles, codes or secrets."""

    action: str  # "<domain>.<object>.<verb>", e.g. "identity.session.create", "card.issue"
    outcome: Outcome = "success"
    actor_kind: ActorKind
    actor_id: str | None = None
    acting_for: str | None = None  # the organisation a person acted for
    target_kind: str | None = None
    target_id: str | None = None
    client_address: str | None = None
    client_id: str | None = None
    request_id: str | None = None
    details: dict[str, DetailValue] = msgspec.field(default_factory=dict)
    occurred_at: dt.datetime = msgspec.field(default_factory=lambda: dt.datetime.now(dt.UTC))


class AuditReceipt(msgspec.Struct, frozen=True):
    """A recorded event: its place in ``identity.audit_pending`` and its digest (until sealed, it has
    no place in the chain yet)."""

    event_id: int
    digest: str


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A sealed entry (``seq``, ``prev_hash``, ``hash`` set), or one not sealed yet (``pending_id``)."""

    seq: int | None
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: str | None
    acting_for: str | None
    action: str
    target_kind: str | None
    target_id: str | None
    outcome: str
    client_address: str | None
    client_id: str | None
    request_id: str | None
    details: dict[str, Any]
    prev_hash: str | None
    hash: str | None
    pending_id: int | None = None


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None
    # Recorded but not chained yet; their contents are checked against their recorded digests.
    unsealed: int = 0
    first_broken_pending_id: int | None = None


def _time(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_digest(
    *,
    occurred_at: dt.datetime,
    actor_kind: str,
    actor_id: str | None,
    acting_for: str | None,
    action: str,
    target_kind: str | None,
    target_id: str | None,
    outcome: str,
    client_address: str | None,
    client_id: str | None,
    request_id: str | None,
    details: dict[str, Any],
) -> bytes:
    canonical = msgspec.json.encode(
        [
            _FORMAT,
            _time(occurred_at),
            actor_kind,
            actor_id,
            acting_for,
            action,
            target_kind,
            target_id,
            outcome,
            client_address,
            client_id,
            request_id,
            details,
        ],
        order="sorted",
    )
    return hashlib.sha256(canonical).digest()


def chain_hash(prev_hash: bytes, seq: int, digest: bytes) -> bytes:
    return hashlib.sha256(prev_hash + seq.to_bytes(8, "big", signed=True) + digest).digest()


def _digest_of(event: AuditEvent | Record) -> bytes:
    fields = (
        "occurred_at",
        "actor_kind",
        "actor_id",
        "acting_for",
        "action",
        "target_kind",
        "target_id",
        "outcome",
        "client_address",
        "client_id",
        "request_id",
        "details",
    )
    if isinstance(event, AuditEvent):
        return canonical_digest(**{f: getattr(event, f) for f in fields})
    values = {f: event[f] for f in fields}
    values["details"] = msgspec.json.decode(event["details"])
    return canonical_digest(**values)


_PENDING_COLUMNS = (
    "occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id, outcome, "
    "client_address, client_id, request_id, details, digest"
)
_PENDING_TYPES = (
    "timestamptz", "text", "text", "text", "text", "text", "text", "text", "text", "text", "text",
    "text::jsonb", "bytea",
)  # fmt: skip


def pending_insert(first: int, source: str | None = None) -> str:
    """The INSERT of one event into ``identity.audit_pending`` with its values in the parameters
    ``$first`` to ``$first + 12`` (:func:`pending_params`), once per row of ``source`` if given (a CTE
    name: the event is recorded only if what it audits happened, in one statement). Call
    :func:`recorded` after running it."""
    values = ", ".join(f"${first + i}::{t}" for i, t in enumerate(_PENDING_TYPES))
    tail = f" FROM {source}" if source else ""
    return f"INSERT INTO identity.audit_pending ({_PENDING_COLUMNS}) SELECT {values}{tail} RETURNING id"


def pending_params(event: AuditEvent) -> tuple[Any, ...]:
    details = msgspec.json.encode(event.details).decode()
    if "\\u0000" in details:
        raise ValueError("audit details cannot hold NUL characters")
    return (
        event.occurred_at,
        event.actor_kind,
        event.actor_id,
        event.acting_for,
        event.action,
        event.target_kind,
        event.target_id,
        event.outcome,
        event.client_address,
        event.client_id,
        event.request_id,
        details,
        _digest_of(event),
    )


def recorded() -> None:
    """Tell this process's sealer that an event was recorded (it seals once the caller commits)."""
    for wake in _WAKERS:
        wake()


_RECORD = pending_insert(1)


async def record(connection: Connection, event: AuditEvent) -> AuditReceipt:
    """Record ``event``, in the caller's transaction if one is open; it is chained once committed.

    Nothing is locked: call it anywhere in a transaction. The event reaches the chain when a sealer
    runs (the app's background sealer is woken by this call; ``citizen audit seal`` otherwise).
    """
    params = pending_params(event)
    event_id = await connection.fetchval(_RECORD, *params)
    recorded()
    return AuditReceipt(int(event_id), params[-1].hex())


def on_record(wake: Callable[[], None]) -> Callable[[], None]:
    """Call ``wake`` after each :func:`record` in this process (before the caller commits); returns
    the function that unregisters it. The sealer uses it to run soon after activity."""
    _WAKERS.append(wake)
    return lambda: _WAKERS.remove(wake)


def _hex(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()


def _entry(row: Record) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        occurred_at=row["occurred_at"],
        actor_kind=row["actor_kind"],
        actor_id=row["actor_id"],
        acting_for=row["acting_for"],
        action=row["action"],
        target_kind=row["target_kind"],
        target_id=row["target_id"],
        outcome=row["outcome"],
        client_address=row["client_address"],
        client_id=row["client_id"],
        request_id=row["request_id"],
        details=msgspec.json.decode(row["details"]),
        prev_hash=_hex(row["prev_hash"]),
        hash=_hex(row["hash"]),
        pending_id=row["pending_id"],
    )


async def entries_for(
    connection: Connection, subject: uuid.UUID | str, *, limit: int = 200
) -> list[AuditEntry]:
    """Entries where ``subject`` acted, was acted for, or was the target; newest first (the events not
    sealed yet, then the chain: a sealer only ever appends them after every sealed entry)."""
    rows = await connection.fetch(_BY_SUBJECT, str(subject), limit)
    return [_entry(r) for r in rows]


async def verify_chain(connection: Connection, *, batch: int = 5000) -> ChainReport:
    """Recompute the whole chain; report the first entry that does not verify. Then count the events
    not sealed yet and check each against the digest recorded with it. One snapshot throughout, so a
    sealer running meanwhile changes nothing seen here."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        head = await connection.fetchrow("SELECT seq, hash FROM identity.audit_head")
        assert head is not None
        head_seq, head_hash = int(head["seq"]), bytes(head["hash"])

        def broken(seq: int, reason: str, count: int) -> ChainReport:
            return ChainReport(
                ok=False,
                entries=count,
                head_seq=head_seq,
                head_hash=head_hash.hex(),
                first_broken_seq=seq,
                reason=reason,
            )

        expected_seq, prev, count = 1, GENESIS, 0
        cursor = connection.cursor(_ALL, prefetch=batch)
        async for row in cursor:
            seq = int(row["seq"])
            if seq != expected_seq:
                return broken(expected_seq, f"entry {expected_seq} is missing (next is {seq})", count)
            if bytes(row["prev_hash"]) != prev:
                return broken(seq, "prev_hash does not match the previous entry's hash", count)
            if chain_hash(prev, seq, _digest_of(row)) != bytes(row["hash"]):
                return broken(seq, "the entry's content does not match its hash", count)
            prev = bytes(row["hash"])
            expected_seq += 1
            count += 1
        if count != head_seq or prev != head_hash:
            return broken(
                min(count, head_seq) + 1, f"the log ends at {count} but its head records {head_seq}", count
            )
        unsealed = 0
        async for row in connection.cursor(_PENDING, prefetch=batch):
            unsealed += 1
            if _digest_of(row) != bytes(row["digest"]):
                return ChainReport(
                    ok=False,
                    entries=count,
                    head_seq=head_seq,
                    head_hash=head_hash.hex(),
                    reason=f"unsealed event {row['id']} does not match the digest recorded with it",
                    unsealed=unsealed,
                    first_broken_pending_id=int(row["id"]),
                )
    return ChainReport(
        ok=True, entries=count, head_seq=head_seq, head_hash=head_hash.hex(), unsealed=unsealed
    )
