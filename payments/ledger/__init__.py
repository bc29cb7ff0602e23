"""The double-entry ledger (TigerBeetle's model on PostgreSQL). See ``store`` for how a batch runs."""

from payments.ledger.accounts import create_accounts, lookup_balances, lookup_transfers
from payments.ledger.pending import (
    LEDGER_REFUSED,
    LedgerCall,
    refusal,
    reserve_call,
    reserve_pending_txn,
    resolve_call,
    resolve_pending_txn,
)
from payments.ledger.snapshot import TransferRow
from payments.ledger.store import create_transfers, create_transfers_txn, expire_pending
from payments.ledger.types import (
    AMOUNT_MAX,
    CNY,
    Account,
    AccountCode,
    AccountFlags,
    AccountResult,
    Balance,
    Transfer,
    TransferFlags,
    TransferResult,
)

__all__ = [
    "AMOUNT_MAX",
    "CNY",
    "LEDGER_REFUSED",
    "Account",
    "AccountCode",
    "AccountFlags",
    "AccountResult",
    "Balance",
    "LedgerCall",
    "Transfer",
    "TransferFlags",
    "TransferResult",
    "TransferRow",
    "create_accounts",
    "create_transfers",
    "create_transfers_txn",
    "expire_pending",
    "lookup_balances",
    "lookup_transfers",
    "refusal",
    "reserve_call",
    "reserve_pending_txn",
    "resolve_call",
    "resolve_pending_txn",
]
