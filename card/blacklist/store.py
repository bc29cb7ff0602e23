"""The server side of the blacklist: the current list, its versioned changes, deltas and snapshots.

A version is one committed change set (``change_txn``): entries are added or removed in the
caller's transaction, the head row is locked so versions are gap-free and ordered, and each change
is recorded in ``card.blacklist_changes``. ``build_delta(since)`` nets the changes after ``since``
(an entry added then removed since is left out) in SQL, returning the packed 8-byte lists straight
from PostgreSQL (``int8send``), so a 1-million-entry snapshot is one round trip.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from card._db import Connection
from card.blacklist.format import BlacklistDelta

__all__ = ["EntryKind", "ListEntry", "build_delta", "change_txn", "current_version", "is_listed"]


class EntryKind(enum.IntEnum):
    CARD = 1
    AUTHORISATION = 2


@dataclass(frozen=True, slots=True)
class ListEntry:
    kind: EntryKind
    value: int
    card_id: uuid.UUID | None = None
    reason: str = ""


async def current_version(connection: Connection) -> int:
    return int(await connection.fetchval("SELECT version FROM card.blacklist_head"))


async def is_listed(connection: Connection, kind: EntryKind, value: int) -> bool:
    found = await connection.fetchval(
        "SELECT true FROM card.blacklist_entries WHERE kind = $1 AND value = $2", int(kind), value
    )
    return bool(found)


async def change_txn(
    connection: Connection,
    *,
    adds: Sequence[ListEntry] = (),
    removes: Sequence[tuple[EntryKind, int]] = (),
    now: dt.datetime,
    valid_from: dt.datetime | None = None,
) -> int | None:
    """Apply one change set in the caller's transaction; the new version, or None if nothing changed."""
    head = int(await connection.fetchval("SELECT version FROM card.blacklist_head FOR UPDATE"))
    version = head + 1
    added = await connection.fetch(
        """
        INSERT INTO card.blacklist_entries (kind, value, card_id, reason, version)
        SELECT * , $5::bigint FROM unnest($1::smallint[], $2::bigint[], $3::uuid[], $4::text[])
        ON CONFLICT DO NOTHING RETURNING kind, value
        """,
        [int(e.kind) for e in adds],
        [e.value for e in adds],
        [e.card_id for e in adds],
        [e.reason for e in adds],
        version,
    )
    removed = await connection.fetch(
        """
        DELETE FROM card.blacklist_entries e USING unnest($1::smallint[], $2::bigint[]) AS r(kind, value)
        WHERE e.kind = r.kind AND e.value = r.value RETURNING e.kind, e.value
        """,
        [int(k) for k, _ in removes],
        [v for _, v in removes],
    )
    if not added and not removed:
        return None
    await connection.execute(
        "INSERT INTO card.blacklist_versions (version, created_at, valid_from) VALUES ($1, $2, $3)",
        version,
        now,
        valid_from or now,
    )
    await connection.executemany(
        "INSERT INTO card.blacklist_changes (version, kind, value, action)"
        ' VALUES ($1, $2, $3, $4::text::"char")',
        [(version, r["kind"], r["value"], "a") for r in added]
        + [(version, r["kind"], r["value"], "r") for r in removed],
    )
    await connection.execute("UPDATE card.blacklist_head SET version = $1", version)
    return version


async def build_delta(connection: Connection, since_version: int) -> BlacklistDelta:
    """The changes a terminal at ``since_version`` needs; a full snapshot if it has none (0) or an
    unknown (future) version. Runs in its own repeatable-read transaction (consistent with the head)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        head = int(await connection.fetchval("SELECT version FROM card.blacklist_head"))
        full = since_version <= 0 or since_version > head
        lists: dict[tuple[int, str], bytes] = {}
        if full:
            rows = await connection.fetch(
                "SELECT kind, 'a' AS action, string_agg(int8send(value), ''::bytea ORDER BY value) AS packed"
                " FROM card.blacklist_entries GROUP BY kind"
            )
            valid_from = await connection.fetchval(
                "SELECT valid_from FROM card.blacklist_versions WHERE version = $1", head
            )
        elif since_version == head:
            rows, valid_from = [], None
        else:
            rows = await connection.fetch(
                """
                WITH touched AS (
                    SELECT kind, value,
                           (array_agg(action ORDER BY version))[1] AS first_action,
                           (array_agg(action ORDER BY version DESC))[1] AS last_action
                    FROM card.blacklist_changes WHERE version > $1 AND version <= $2
                    GROUP BY kind, value
                )
                SELECT kind, last_action::text AS action,
                       string_agg(int8send(value), ''::bytea ORDER BY value) AS packed
                FROM touched WHERE first_action = last_action
                GROUP BY kind, last_action
                """,
                since_version,
                head,
            )
            valid_from = await connection.fetchval(
                "SELECT max(valid_from) FROM card.blacklist_versions WHERE version > $1 AND version <= $2",
                since_version,
                head,
            )
        for row in rows:
            lists[(int(row["kind"]), row["action"])] = bytes(row["packed"])
    return BlacklistDelta(
        full=full,
        from_version=0 if full else since_version,
        to_version=head,
        valid_from=valid_from or dt.datetime.now(dt.UTC),
        card_adds=lists.get((EntryKind.CARD, "a"), b""),
        card_removes=lists.get((EntryKind.CARD, "r"), b""),
        auth_adds=lists.get((EntryKind.AUTHORISATION, "a"), b""),
        auth_removes=lists.get((EntryKind.AUTHORISATION, "r"), b""),
    )
