"""asyncpg types for identity (asyncpg's classes are generic only in its stubs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

__all__ = ["Connection", "Pool", "Record"]

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection

Record = asyncpg.Record
