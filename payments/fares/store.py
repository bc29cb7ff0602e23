"""Versioned fare tables in PostgreSQL, and what terminals download.

``publish_fare_table`` stores a table as its canonical bytes (JSON, keys sorted, version 0) and
gives it the operator's next version; publishing the same table again returns the existing
version (idempotent). ``current_fare_table`` is the newest version in effect at a moment.

For the terminal protocol (card/terminal) — the function to serve:
``terminal_fare_table(db, operator) -> TerminalFareTable | None``: ``version``, ``digest``
(SHA-256 of ``body``), ``body`` (canonical JSON of the whole table, for readers that rate
zones, concessions and transfers themselves) and ``rules``: ``(line, base_fare,
per_stop_fare, max_fare)`` per flat or distance line, exactly the fields of
``card.terminal.messages.FareRule``, plus ``default_fare``.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec

from payments._db import Connection, Pool
from payments.errors import PaymentsError
from payments.fares.model import FareTable

__all__ = [
    "FareTableInvalid",
    "TerminalFareTable",
    "canonical_bytes",
    "current_fare_table",
    "fare_table_versions",
    "publish_fare_table",
    "terminal_fare_table",
]


class FareTableInvalid(PaymentsError):
    problem_type = "fare-table-invalid"
    problem_title = "The fare table is not valid"


class TerminalFareTable(msgspec.Struct, frozen=True, kw_only=True):
    operator: str
    version: int
    digest: bytes
    body: bytes
    default_fare: int
    rules: tuple[tuple[str, int, int, int], ...]  # (line, base_fare, per_stop_fare, max_fare)


def canonical_bytes(table: FareTable) -> bytes:
    unversioned = msgspec.structs.replace(table, version=0)
    return msgspec.json.encode(unversioned, order="sorted")


async def publish_fare_table(
    db: Pool | Connection, table: FareTable, *, effective_from: dt.datetime | None = None
) -> int:
    """Store ``table`` as the operator's next version (or return the version it already has)."""
    try:
        table.validate()
    except ValueError as exc:
        raise FareTableInvalid(str(exc)) from None
    body = canonical_bytes(table)
    digest = hashlib.sha256(body).digest()
    version = await db.fetchval(
        "WITH existing AS (SELECT version FROM payments.fare_tables WHERE operator = $1 AND digest = $2), "
        "inserted AS (INSERT INTO payments.fare_tables (operator, version, body, digest, effective_from) "
        "SELECT $1, coalesce((SELECT max(version) FROM payments.fare_tables WHERE operator = $1), 0) + 1, "
        "$3, $2, coalesce($4, now()) WHERE NOT EXISTS (SELECT 1 FROM existing) "
        "ON CONFLICT DO NOTHING RETURNING version) "
        "SELECT version FROM inserted UNION ALL SELECT version FROM existing",
        table.operator,
        digest,
        body,
        effective_from,
    )
    if version is None:  # a concurrent publisher took the version number: look again
        version = await db.fetchval(
            "SELECT version FROM payments.fare_tables WHERE operator = $1 AND digest = $2",
            table.operator,
            digest,
        )
        if version is None:
            raise FareTableInvalid("a concurrent publication of another table won; publish again")
    return int(version)


async def current_fare_table(
    db: Pool | Connection, operator: str, *, at: dt.datetime | None = None
) -> FareTable | None:
    row = await db.fetchrow(
        "SELECT version, body FROM payments.fare_tables WHERE operator = $1 "
        "AND effective_from <= coalesce($2, now()) ORDER BY version DESC LIMIT 1",
        operator,
        at,
    )
    if row is None:
        return None
    table = msgspec.json.decode(bytes(row["body"]), type=FareTable)
    return msgspec.structs.replace(table, version=int(row["version"]))


async def fare_table_versions(db: Pool | Connection, operator: str) -> list[int]:
    rows = await db.fetch(
        "SELECT version FROM payments.fare_tables WHERE operator = $1 ORDER BY version", operator
    )
    return [int(r["version"]) for r in rows]


async def terminal_fare_table(
    db: Pool | Connection, operator: str, *, at: dt.datetime | None = None
) -> TerminalFareTable | None:
    table = await current_fare_table(db, operator, at=at)
    if table is None:
        return None
    body = canonical_bytes(table)
    rules = tuple(
        (entry.line, entry.base_fare, entry.per_stop_fare if entry.kind == "distance" else 0, entry.max_fare)
        for entry in table.lines
        if entry.kind in ("flat", "distance")
    )
    return TerminalFareTable(
        operator=operator,
        version=table.version,
        digest=hashlib.sha256(body).digest(),
        body=body,
        default_fare=table.default_fare,
        rules=rules,
    )
