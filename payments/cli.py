"""The payments subcommands of ``citizen`` (registered in ``backend/cli.py``)."""

from __future__ import annotations

import sys

from payments._db import Pool
from payments.ledger.check import check_ledger

__all__ = ["ledger_check"]


async def ledger_check(pool: Pool) -> int:
    """``citizen ledger check``: 0 when every invariant holds; else 1, the first discrepancy on stderr."""
    found = await check_ledger(pool, limit=1)
    if found:
        first = found[0]
        print(f"ledger check failed [{first.check}]: {first.detail}", file=sys.stderr)  # noqa: T201
        return 1
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM payments.accounts) AS accounts, "
        "(SELECT count(*) FROM payments.transfers) AS transfers, "
        "(SELECT count(*) FROM payments.pending_transfers WHERE state = 'pending') AS open_pending"
    )
    assert row is not None
    print(  # noqa: T201
        f"ledger check passed: {row['accounts']} accounts, {row['transfers']} transfers, "
        f"{row['open_pending']} open pending transfers"
    )
    return 0
