"""The asyncpg pool, and how a database outage is recognised."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from backend.settings import DatabaseSettings

__all__ = ["Connection", "Pool", "create_pool", "is_database_unavailable"]

# asyncpg's classes are generic only in its stubs; Litestar evaluates annotations at run time.
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection


async def _init_connection(connection: Connection) -> None:
    # jsonb both ways as plain Python values; domains encode with msgspec before it reaches here.
    import json

    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_session_reset(connection: Connection) -> None:
    """Skip asyncpg's per-release ``RESET ALL; UNLISTEN *; ...`` round trip.

    The rule that makes this safe: code never leaves session state on a pooled connection
    (``SET LOCAL`` not ``SET``, ``pg_advisory_xact_lock`` not ``pg_advisory_lock``, no
    ``LISTEN``). asyncpg still rolls back any open transaction on release.
    """


async def create_pool(settings: DatabaseSettings, url: str) -> Pool:
    """A pool for one process. ``url`` is passed separately: it is a secret in ``settings``."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min(settings.pool_min, settings.pool_max),
        max_size=settings.pool_max,
        timeout=settings.connect_timeout,
        command_timeout=settings.command_timeout,
        init=_init_connection,
        reset=_no_session_reset,
        server_settings={"application_name": "citizen", "timezone": "UTC"},
    )
    assert pool is not None
    return pool


def is_database_unavailable(exc: BaseException) -> bool:
    """True for the errors that mean "PostgreSQL cannot be reached now", not "the query is wrong"."""
    return isinstance(
        exc,
        (
            asyncpg.PostgresConnectionError,  # SQLSTATE class 08
            asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, crash recovery
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.InternalClientError,
            asyncpg.exceptions.InterfaceError,
            ConnectionError,
            FileNotFoundError,  # the unix socket is gone while the server is down
            asyncio.TimeoutError,
            OSError,
        ),
    )
