from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from backend import migrations
from backend.migrations import Migration, MigrationError


def _sample(version: int, sql: str) -> Migration:
    return Migration("sample", version, f"step_{version}", sql)


async def test_every_domain_schema_exists(db: asyncpg.Connection[Any]) -> None:
    # The test database was built by the real migrations.
    assert await migrations.pending(db) == []
    schemas = {r["nspname"] for r in await db.fetch("SELECT nspname FROM pg_namespace")}
    applied_packages = {
        r["package"] for r in await db.fetch("SELECT DISTINCT package FROM backend.schema_migrations")
    }
    assert "backend" in schemas
    assert applied_packages <= schemas  # each package's migrations live in its own schema


async def test_migrations_apply_in_order_once(db: asyncpg.Connection[Any]) -> None:
    files = [
        _sample(1, "CREATE SCHEMA sample; CREATE TABLE sample.t (id int)"),
        _sample(2, "ALTER TABLE sample.t ADD COLUMN name text"),
    ]
    assert await migrations.migrate(db, files) == ["sample/0001_step_1", "sample/0002_step_2"]
    assert await migrations.migrate(db, files) == []
    columns = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'sample'"
    )
    assert {c["column_name"] for c in columns} == {"id", "name"}


async def test_a_changed_applied_file_is_refused(db: asyncpg.Connection[Any]) -> None:
    await migrations.migrate(db, [_sample(1, "CREATE SCHEMA sample")])
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrations.migrate(db, [_sample(1, "CREATE SCHEMA sample; -- edited")])


async def test_a_failing_migration_rolls_back_whole(db: asyncpg.Connection[Any]) -> None:
    files = [_sample(1, "CREATE SCHEMA sample; CREATE TABLE sample.t (id int); SELECT 1/0")]
    with pytest.raises(MigrationError, match="0001_step_1"):
        await migrations.migrate(db, files)
    assert await db.fetchval("SELECT to_regclass('sample.t')") is None
    assert await migrations.pending(db, files) == ["sample/0001_step_1"]


async def test_two_processes_starting_together_do_not_race(database_url: str) -> None:
    files = [_sample(1, "CREATE SCHEMA sample; CREATE TABLE sample.t (id int); SELECT pg_sleep(0.2)")]
    first: Any = await asyncpg.connect(database_url)
    second: Any = await asyncpg.connect(database_url)
    try:
        results = await asyncio.gather(migrations.migrate(first, files), migrations.migrate(second, files))
    finally:
        await first.close()
        await second.close()
    assert sorted(map(len, results)) == [0, 1]  # one applied it, the other found it done


def test_discover_finds_numbered_files_in_package_order() -> None:
    found = migrations.discover()
    order = [migrations.PACKAGES.index(m.package) for m in found]
    assert order == sorted(order)
    for package in {m.package for m in found}:
        versions = [m.version for m in found if m.package == package]
        assert versions == sorted(versions)
        assert versions[0] == 1
