"""The payments demo loader is idempotent."""

from __future__ import annotations

from typing import Any

import asyncpg

from payments.demo import PLATFORM_ACCOUNTS, load_payments_demo, platform_account_id
from payments.ledger import lookup_balances


async def test_platform_accounts_load_twice(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        none: Any = None
        first = await load_payments_demo(pool, none, none, none)
        second = await load_payments_demo(pool, none, none, none)
        assert first == [f"{len(PLATFORM_ACCOUNTS)} platform ledger accounts ({len(PLATFORM_ACCOUNTS)} new)"]
        assert second == [f"{len(PLATFORM_ACCOUNTS)} platform ledger accounts (0 new)"]
        ids = [platform_account_id(n) for n in PLATFORM_ACCOUNTS]
        assert set(await lookup_balances(pool, ids)) == set(ids)
    finally:
        await pool.close()
