"""The payments demo data: the platform's own ledger accounts (idempotent).

Register in ``backend/demo.py`` as ``("payments", load_payments_demo)`` after identity.
"""

from __future__ import annotations

import uuid
from typing import Any

from payments._db import Pool
from payments.ledger import Account, AccountCode, AccountResult, create_accounts

__all__ = ["PLATFORM_ACCOUNTS", "ensure_platform_accounts", "load_payments_demo", "platform_account_id"]

_NAMESPACE = uuid.UUID("5b0c3f0e-6f1d-4c8e-9a57-2f1f6b8e1a01")

# name -> kind; every platform account, one ledger (CNY).
PLATFORM_ACCOUNTS: dict[str, AccountCode] = {
    "clearing:unionpay": AccountCode.CHANNEL_CLEARING,
    "clearing:alipay": AccountCode.CHANNEL_CLEARING,
    "clearing:wechatpay": AccountCode.CHANNEL_CLEARING,
    "fees": AccountCode.FEES,
    "refunds": AccountCode.REFUNDS,
    "suspense": AccountCode.SUSPENSE,
    "rebates": AccountCode.REBATES,
    "settlement": AccountCode.SETTLEMENT,
    "control": AccountCode.CONTROL,
    "topups:awaiting-load": AccountCode.CHANNEL_CLEARING,  # physical cards' paid top-ups until loaded
}


def platform_account_id(name: str) -> uuid.UUID:
    if name not in PLATFORM_ACCOUNTS:
        raise KeyError(f"no platform account {name!r}")
    return uuid.uuid5(_NAMESPACE, f"account:platform:{name}")


async def ensure_platform_accounts(pool: Pool) -> tuple[int, int]:
    """Create the platform's accounts that are missing (idempotent); (how many, how many new)."""
    accounts = [
        Account(id=platform_account_id(name), code=code, reference=f"platform:{name}")
        for name, code in PLATFORM_ACCOUNTS.items()
    ]
    results = await create_accounts(pool, accounts)
    made = sum(r is AccountResult.OK for r in results)
    bad = [f"{a.reference}: {r}" for a, r in zip(accounts, results, strict=True) if not r.succeeded()]
    if bad:
        raise RuntimeError("platform accounts: " + "; ".join(bad))
    return len(accounts), made


async def load_payments_demo(pool: Pool, _redis: Any, _settings: Any, _keyring: Any) -> list[str]:
    total, made = await ensure_platform_accounts(pool)
    return [f"{total} platform ledger accounts ({made} new)"]
