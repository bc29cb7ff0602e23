"""The payments demo data: the platform's own ledger accounts, then the demo citizen's day with
payments (``payments.demo_day``: top-ups, rides until capped, the day's settlement). Idempotent.

Registered in ``backend/demo.py`` as ``("payments", load_payments_demo)`` after identity and card
(it needs the demo citizen's card).
"""

from __future__ import annotations

import uuid
from typing import Any

from payments._db import Pool
from payments.ledger import Account, AccountCode, AccountFlags, AccountResult, create_accounts

__all__ = [
    "PLATFORM_ACCOUNTS",
    "ensure_platform_accounts",
    "load_payments_demo",
    "platform_account",
    "platform_account_id",
]

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
# The rules some of them keep. The holding account gives out (kiosk loads, refunds) only what
# it was paid; an existing one got the flag in migration 0011_holding_account_balance_rule.
_FLAGS: dict[str, AccountFlags] = {"topups:awaiting-load": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS}


def platform_account_id(name: str) -> uuid.UUID:
    if name not in PLATFORM_ACCOUNTS:
        raise KeyError(f"no platform account {name!r}")
    return uuid.uuid5(_NAMESPACE, f"account:platform:{name}")


def platform_account(name: str) -> Account:
    """The platform account ``name`` as the ledger keeps it (id, kind, rules, reference)."""
    return Account(
        id=platform_account_id(name),
        code=PLATFORM_ACCOUNTS[name],
        flags=int(_FLAGS.get(name, AccountFlags.NONE)),
        reference=f"platform:{name}",
    )


async def ensure_platform_accounts(pool: Pool) -> tuple[int, int]:
    """Create the platform's accounts that are missing (idempotent); (how many, how many new)."""
    accounts = [platform_account(name) for name in PLATFORM_ACCOUNTS]
    results = await create_accounts(pool, accounts)
    made = sum(r is AccountResult.OK for r in results)
    bad = [f"{a.reference}: {r}" for a, r in zip(accounts, results, strict=True) if not r.succeeded()]
    if bad:
        raise RuntimeError("platform accounts: " + "; ".join(bad))
    return len(accounts), made


async def load_payments_demo(pool: Pool, _redis: Any, settings: Any, keyring: Any) -> list[str]:
    total, made = await ensure_platform_accounts(pool)
    lines = [f"{total} platform ledger accounts ({made} new)"]
    if settings is None or keyring is None:
        return lines
    if not settings.is_development:
        return [*lines, "skipped the demo citizen's payments: only outside production"]
    from identity.crypto import BlindIndex
    from integrations.simulators.seed import DEMO_CITIZEN
    from payments.demo_day import demo_day

    card = await pool.fetchrow(
        "SELECT a.id AS person_id, c.id AS card_id FROM identity.accounts a "
        "JOIN card.cards c ON c.holder_id = a.id AND c.status = 'active' "
        "WHERE a.id_number_index = $1 AND a.status <> 'deactivated'",
        BlindIndex(keyring.get("pii-index")).id_number(DEMO_CITIZEN.id_number),
    )
    if card is None:
        return [*lines, "skipped the demo citizen's payments: no active demo card (card's demo loader)"]
    return lines + await demo_day(pool, settings, keyring, card["person_id"], card["card_id"])
