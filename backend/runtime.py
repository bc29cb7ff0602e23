"""Resolving where PostgreSQL and Redis are: the given URLs, or the embedded servers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from backend import migrations
from backend.embedded import EmbeddedPostgres, EmbeddedRedis, embedded_services
from backend.settings import Secret, Settings

__all__ = ["Services", "migrate_database", "resolved_services"]

log = logging.getLogger("citizen.runtime")


class Services(msgspec.Struct, frozen=True):
    settings: Settings  # with both URLs set
    postgres: EmbeddedPostgres | None  # None when the URL was given
    redis: EmbeddedRedis | None


@contextlib.contextmanager
def resolved_services(settings: Settings, *, durable: bool = True) -> Iterator[Services]:
    """Start the embedded servers for whichever URL is not set; stop them on exit."""
    need_pg = settings.database.url is None
    need_redis = settings.redis.url is None
    with embedded_services(Path(settings.data_dir), postgres=need_pg, redis=need_redis, durable=durable) as (
        pg,
        rd,
    ):
        database = settings.database
        if pg is not None:
            database = msgspec.structs.replace(database, url=Secret(pg.url))
        redis = settings.redis
        if rd is not None:
            redis = msgspec.structs.replace(redis, url=Secret(rd.url))
        yield Services(settings.replace(database=database, redis=redis), pg, rd)


async def migrate_database(settings: Settings) -> list[str]:
    assert settings.database.url is not None
    connection: Any = await asyncpg.connect(
        settings.database.url.reveal(), timeout=settings.database.connect_timeout
    )
    try:
        return await migrations.migrate(connection)
    finally:
        await connection.close()
