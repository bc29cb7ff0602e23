"""The migration runner: numbered plain ``.sql`` files, per package, applied in order.

Each domain package keeps ``<package>/migrations/NNNN_name.sql`` and owns one PostgreSQL schema of
its own name. Files are applied in package order (``PACKAGES``, dependencies first) and version
order, each in its own transaction with ``lock_timeout`` and ``statement_timeout`` set, under a
session advisory lock so that two starting processes do not race (warehouse
``migrations/env.py``). Each applied file is recorded with its SHA-256; a file changed after it
was applied stops the run (synapse's ``applied_schema_deltas``, stricter). A file whose first line
is ``-- citizen: no-transaction`` runs outside a transaction (for ``CREATE INDEX CONCURRENTLY``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from backend.db import Connection

__all__ = ["PACKAGES", "Migration", "MigrationError", "applied", "discover", "migrate", "pending"]

# Dependencies first: card references identity and payments.
PACKAGES: tuple[str, ...] = ("backend", "identity", "payments", "card", "integrations")

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x43_49_54_5A  # "CITZ": one advisory lock for every migration run
_NO_TRANSACTION = "-- citizen: no-transaction"

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS backend;
CREATE TABLE IF NOT EXISTS backend.schema_migrations (
    package     text        NOT NULL,
    version     integer     NOT NULL,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (package, version)
);
"""


class MigrationError(RuntimeError):
    """The database and the migration files disagree; nothing further was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    package: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.package}/{self.version:04d}_{self.name}"


def discover(packages: tuple[str, ...] = PACKAGES) -> list[Migration]:
    found: list[Migration] = []
    for package in packages:
        try:
            folder = resources.files(package) / "migrations"
        except (ModuleNotFoundError, NotADirectoryError):  # absent, or a namespace package being written
            continue
        if not folder.is_dir():
            continue
        versions: set[int] = set()
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            match = _FILE_NAME.match(entry.name)
            if match is None:
                if entry.name.endswith(".sql"):
                    raise MigrationError(f"{package}/migrations/{entry.name}: name must be NNNN_name.sql")
                continue
            version = int(match.group(1))
            if version in versions:
                raise MigrationError(f"{package}: two migrations numbered {version:04d}")
            versions.add(version)
            found.append(Migration(package, version, match.group(2), entry.read_text(encoding="utf-8")))
    return found


async def applied(connection: Connection) -> dict[tuple[str, int], str]:
    exists = await connection.fetchval("SELECT to_regclass('backend.schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await connection.fetch("SELECT package, version, checksum FROM backend.schema_migrations")
    return {(r["package"], r["version"]): r["checksum"] for r in rows}


def _check(migrations: list[Migration], done: dict[tuple[str, int], str]) -> list[Migration]:
    todo = []
    for migration in migrations:
        checksum = done.get((migration.package, migration.version))
        if checksum is None:
            todo.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"{migration.label}.sql was changed after it was applied "
                "(checksum differs); write a new migration instead of editing an applied one"
            )
    return todo


async def pending(connection: Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Labels of the migrations not yet applied (raises on a changed applied file)."""
    return [m.label for m in _check(migrations or discover(), await applied(connection))]


async def migrate(
    connection: Connection,
    migrations: list[Migration] | None = None,
    *,
    lock_timeout: str = "5s",
    statement_timeout: str = "10min",
) -> list[str]:
    """Apply every pending migration; return the labels applied."""
    migrations = discover() if migrations is None else migrations
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await connection.execute(_BOOTSTRAP)
        todo = _check(migrations, await applied(connection))
        for migration in todo:
            transactional = not migration.sql.lstrip().startswith(_NO_TRANSACTION)
            try:
                if transactional:
                    async with connection.transaction():
                        await connection.execute(
                            f"SET LOCAL lock_timeout = '{lock_timeout}';"
                            f" SET LOCAL statement_timeout = '{statement_timeout}'"
                        )
                        await connection.execute(migration.sql)
                        await _record(connection, migration)
                else:
                    await connection.execute(migration.sql)
                    await _record(connection, migration)
            except asyncpg.PostgresError as exc:
                raise MigrationError(
                    f"{migration.label}.sql failed: {exc.__class__.__name__}: {exc}"
                ) from exc
        return [m.label for m in todo]
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _record(connection: Connection, migration: Migration) -> None:
    await connection.execute(
        "INSERT INTO backend.schema_migrations (package, version, name, checksum) VALUES ($1, $2, $3, $4)",
        migration.package,
        migration.version,
        migration.name,
        migration.checksum,
    )
