"""Audit entries chained by SHA-256 (who, acting for whom, what, when, from where, which client, outcome).

``digest = sha256(canonical(entry))`` where ``canonical`` is a JSON array of the entry's fields in a
fixed order (details with sorted keys, times as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``), and
``hash = sha256(prev_hash || seq as 8 bytes big-endian || digest)``. The database function
``identity.audit_append`` assigns ``seq`` under the row lock of ``identity.audit_head``, so concurrent
appends from any number of processes form one chain. ``verify_chain`` recomputes every digest from
the stored columns, so a changed, deleted, inserted or reordered row breaks the chain at that row,
and a removed tail shows against ``audit_head``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
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
    "record",
    "verify_chain",
]

GENESIS = bytes(32)
_COLUMNS = (
    "seq, occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id, outcome, "
    "client_address, client_id, request_id, details::text AS details, prev_hash, hash"
)
_ALL = f"SELECT {_COLUMNS} FROM identity.audit_log ORDER BY seq"  # noqa: S608 - constants only
_BY_SUBJECT = (
    f"SELECT {_COLUMNS} FROM identity.audit_log"  # noqa: S608 - constants only
    " WHERE actor_id = $1 OR target_id = $1 OR acting_for = $1 ORDER BY seq DESC LIMIT $2"
)
_FORMAT = "citizen-audit/1"

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
    seq: int
    hash: str


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
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
    prev_hash: str
    hash: str


class ChainReport(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None = None
    reason: str | None = None


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


async def record(connection: Connection, event: AuditEvent) -> AuditReceipt:
    """Append ``event`` to the chain, in the caller's transaction if one is open.

    The chain's head stays locked until that transaction ends, so call this last in a transaction
    (or outside one, with a pool connection) to keep the lock short.
    """
    if "\\u0000" in msgspec.json.encode(event.details).decode():
        raise ValueError("audit details cannot hold NUL characters")
    row = await connection.fetchrow(
        """
        SELECT seq, hash
        FROM identity.audit_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb, $13)
        """,
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
        msgspec.json.encode(event.details).decode(),
        _digest_of(event),
    )
    assert row is not None
    return AuditReceipt(row["seq"], bytes(row["hash"]).hex())


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
        prev_hash=bytes(row["prev_hash"]).hex(),
        hash=bytes(row["hash"]).hex(),
    )


async def entries_for(
    connection: Connection, subject: uuid.UUID | str, *, limit: int = 200
) -> list[AuditEntry]:
    """Entries where ``subject`` acted, was acted for, or was the target; newest first."""
    rows = await connection.fetch(
        _BY_SUBJECT,
        str(subject),
        limit,
    )
    return [_entry(r) for r in rows]


async def verify_chain(connection: Connection, *, batch: int = 5000) -> ChainReport:
    """Recompute the whole chain; report the first entry that does not verify."""
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
    async with connection.transaction(isolation="repeatable_read", readonly=True):
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
    return ChainReport(ok=True, entries=count, head_seq=head_seq, head_hash=head_hash.hex())
