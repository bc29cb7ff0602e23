"""Ledger data types: TigerBeetle's account and transfer model, amounts in integer fen."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

import msgspec

__all__ = [
    "AMOUNT_MAX",
    "CNY",
    "Account",
    "AccountCode",
    "AccountFlags",
    "AccountResult",
    "Balance",
    "Transfer",
    "TransferFlags",
    "TransferResult",
]

CNY = 156  # the ledger (ISO 4217 numeric code): one ledger per currency
AMOUNT_MAX = 2**63 - 1  # bigint; on a post, "no amount" means the full pending amount


class AccountCode(enum.IntEnum):
    """The kind of an account (TigerBeetle's ``code``)."""

    EPURSE = 1  # a citizen card's stored value: the platform owes the citizen
    OPERATOR_PAYABLE = 2  # owed to a transit operator for fares taken
    CHANNEL_CLEARING = 3  # money a payment channel collected for us, until it settles
    FEES = 4  # fees earned (or paid) by the platform
    REFUNDS = 5  # refunds in flight to a channel
    SUSPENSE = 6  # unexplained differences waiting for an investigation
    SETTLEMENT = 7  # the bank account operators are paid from (settlement transfers)
    REBATES = 8  # fare-cap rebates paid back to e-purses
    CONTROL = 9  # technical counter-party (e.g. opening balances in tests and demos)


class AccountFlags(enum.IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 0  # debits_pending + debits_posted <= credits_posted + limit
    CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 1
    CLOSED = 1 << 2  # no new transfers (posting/voiding existing pending ones is still allowed)


class TransferFlags(enum.IntFlag):
    NONE = 0
    LINKED = 1 << 0  # succeeds or fails together with the next transfer in the batch
    PENDING = 1 << 1  # reserves the amount (two-phase)
    POST_PENDING_TRANSFER = 1 << 2  # posts the pending transfer ``pending_id`` (partly or fully)
    VOID_PENDING_TRANSFER = 1 << 3  # releases the pending transfer ``pending_id``


class Transfer(msgspec.Struct, frozen=True, kw_only=True):
    """A transfer request. ``id`` is chosen by the client (a UUID, ideally time-ordered: v7).

    For a post or a void, the accounts may be left ``None`` (they are the pending transfer's),
    and ``amount`` ``None`` means the full pending amount.
    """

    id: uuid.UUID
    debit_account_id: uuid.UUID | None = None
    credit_account_id: uuid.UUID | None = None
    amount: int | None = None
    pending_id: uuid.UUID | None = None
    ledger: int = CNY
    code: int = 1
    flags: int = 0
    timeout: int = 0  # seconds; only for PENDING; 0 means no timeout
    user_data_128: uuid.UUID | None = None
    user_data_64: int | None = None
    user_data_32: int | None = None
    reference: str | None = None


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    code: int
    ledger: int = CNY
    flags: int = 0
    overdraft_limit: int = 0  # fen an account with DEBITS_MUST_NOT_EXCEED_CREDITS may go below zero
    user_data_128: uuid.UUID | None = None
    user_data_64: int | None = None
    user_data_32: int | None = None
    reference: str | None = None


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    account_id: uuid.UUID
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def credit_balance(self) -> int:
        """Posted credits minus posted debits: what an e-purse holds."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What can still be debited from a credit-normal account (pending debits count)."""
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"  # the same id with the same fields: treat as ok
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    ID_ALREADY_FAILED = "id_already_failed"  # a retry never changes a failed outcome
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"  # also for negative amounts
    AMOUNT_EXCEEDS_LIMIT = "amount_exceeds_limit"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    DEBIT_ACCOUNT_ID_MUST_NOT_BE_NONE = "debit_account_id_must_not_be_none"
    CREDIT_ACCOUNT_ID_MUST_NOT_BE_NONE = "credit_account_id_must_not_be_none"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = "transfer_must_have_the_same_ledger_as_accounts"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    PENDING_ID_MUST_BE_NONE = "pending_id_must_be_none"
    PENDING_ID_MUST_NOT_BE_NONE = "pending_id_must_not_be_none"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = "pending_transfer_has_different_debit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = "pending_transfer_has_different_credit_account_id"
    PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT = "pending_transfer_has_different_amount"  # void amount
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    DEBIT_ACCOUNT_CLOSED = "debit_account_closed"
    CREDIT_ACCOUNT_CLOSED = "credit_account_closed"
    EXCEEDS_CREDITS = "exceeds_credits"  # the debit account would go below its overdraft limit
    EXCEEDS_DEBITS = "exceeds_debits"
    OVERFLOW = "overflow"

    @property
    def succeeded(self) -> bool:
        return self in (TransferResult.OK, TransferResult.EXISTS)


# Outcomes that depend on the ledger's state rather than on the request alone: an id that got
# one of these is recorded, and a retry with the same id gets ID_ALREADY_FAILED (TigerBeetle 0.16.4+).
TRANSIENT_RESULTS = frozenset(
    {
        TransferResult.DEBIT_ACCOUNT_NOT_FOUND,
        TransferResult.CREDIT_ACCOUNT_NOT_FOUND,
        TransferResult.PENDING_TRANSFER_NOT_FOUND,
        TransferResult.PENDING_TRANSFER_EXPIRED,
        TransferResult.EXCEEDS_CREDITS,
        TransferResult.EXCEEDS_DEBITS,
        TransferResult.DEBIT_ACCOUNT_CLOSED,
        TransferResult.CREDIT_ACCOUNT_CLOSED,
    }
)


class AccountResult(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    LEDGER_MUST_NOT_BE_ZERO = "ledger_must_not_be_zero"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    OVERDRAFT_LIMIT_MUST_NOT_BE_NEGATIVE = "overdraft_limit_must_not_be_negative"
    REFERENCE_EXISTS = "reference_exists"

    def succeeded(self) -> bool:
        return self in (AccountResult.OK, AccountResult.EXISTS)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
