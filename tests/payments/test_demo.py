"""The payments demo loader is idempotent."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from backend.db import create_pool
from backend.keyring import Keyring
from backend.settings import Settings
from card.demo import load_card_demo
from identity.demo import load_identity_demo
from integrations.simulators.process import SimulatorsProcess
from payments.demo import PLATFORM_ACCOUNTS, load_payments_demo, platform_account_id
from payments.ledger import lookup_balances
from tests.payments.channel_helpers import channel_reset


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


async def test_the_demo_citizens_day_tops_up_rides_until_capped_and_settles(
    database_url: str,
    redis_client: Any,
    settings_with_upstreams: Settings,
    keyring: Keyring,
    simulators: SimulatorsProcess,
) -> None:
    async with httpx.AsyncClient() as control:
        await channel_reset(control, simulators.urls)
    settings = settings_with_upstreams
    pool = await create_pool(settings.database, database_url)
    try:
        await load_identity_demo(pool, redis_client, settings, keyring)
        await load_card_demo(pool, redis_client, settings, keyring)
        lines = await load_payments_demo(pool, redis_client, settings, keyring)
        text = "\n".join(lines)
        for channel in ("unionpay", "alipay", "wechatpay"):
            assert f"top-up {channel}: 50.00 yuan, order TU" in text and "credited" in text, text
        assert (
            "5 metro taps at 4.00 (daily cap 12.00), 4 bus QR rides charged 2.00 + 2.00 + 2.00 then " in text
        )
        assert "metro 5 taps gross 20.00 - rebates 8.00 - fees 0.06 = 11.94" in text, text
        assert "bus 3 taps gross 6.00 - rebates 0.00 - fees 0.03 = 5.97" in text, text
        assert lines[-1] == (
            "summary: topped up 150.00 yuan, e-purse 132.00 yuan, "
            "2 operator(s) paid exactly the fares taken, ledger check passed"
        ), text
        again = await load_payments_demo(pool, redis_client, settings, keyring)
        assert "top-up alipay: 50.00 yuan already credited today" in again
        assert "rides of today already made" in again
        assert again[-1] == lines[-1]
    finally:
        await pool.close()


async def test_without_the_simulators_the_topups_are_skipped_with_a_line(
    database_url: str, redis_client: Any, settings: Settings, keyring: Keyring
) -> None:
    pool = await create_pool(settings.database, database_url)
    try:
        await load_identity_demo(pool, redis_client, settings, keyring)
        await load_card_demo(pool, redis_client, settings, keyring)
        lines = await load_payments_demo(pool, redis_client, settings, keyring)
        assert lines[1].startswith("top-ups skipped: no payment channel simulator is running")
        assert lines[2].startswith("rides skipped: the e-purse holds 0.00 yuan")
        assert lines[-1].endswith("ledger check passed")
    finally:
        await pool.close()
