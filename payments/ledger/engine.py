"""The ledger's rules, as a pure function of a locked snapshot: no I/O here.

``evaluate`` takes the transfers of one batch and the state the store read under lock (the
accounts involved, the ids that already exist or failed, the pending transfers referenced) and
returns one result per transfer plus the writes that apply the batch: the new transfer rows,
the net change of each account's four totals, the new and resolved reservations and the ids
to record as failed. Transfers are evaluated in order, so a batch behaves exactly like the same
transfers submitted one by one; a linked chain is undone as a whole when one of its transfers fails.

The database functions of migration 0004 (``ledger.pending``: one reservation, or one post or
void, in one statement) repeat these rules for that one transfer, in this order: a change here
needs a new migration replacing them (``tests/payments/test_ledger_pending.py`` compares both).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

from payments.ledger.snapshot import AccountState, BatchOutcome, PendingState, Run, TransferRow
from payments.ledger.types import (
    AMOUNT_MAX,
    TRANSIENT_RESULTS,
    AccountFlags,
    Transfer,
    TransferFlags,
    TransferResult,
)

__all__ = ["evaluate", "expire"]

R = TransferResult
# Plain ints on the hot path: IntFlag arithmetic costs microseconds per operation.
_LINKED = int(TransferFlags.LINKED)
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING_TRANSFER)
_VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
_TWO_PHASE = _PENDING | _POST | _VOID
_RESOLVE = _POST | _VOID
_KNOWN_FLAGS = _LINKED | _TWO_PHASE
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
_CLOSED = int(AccountFlags.CLOSED)


def evaluate(
    transfers: list[Transfer],
    *,
    accounts: dict[uuid.UUID, AccountState],
    existing: dict[uuid.UUID, TransferRow],
    failed: dict[uuid.UUID, str],
    pending: dict[uuid.UUID, PendingState],
    now: dt.datetime,
) -> BatchOutcome:
    """Apply ``transfers`` in order to the snapshot (mutated in place) and return the outcome."""
    initial = {key: tuple(a.balances) for key, a in accounts.items()}
    initial_states = {key: p.state for key, p in pending.items()}
    run = Run(accounts, existing, failed, pending, now)
    results: list[TransferResult] = [R.OK] * len(transfers)
    n = len(transfers)
    i = 0
    while i < n:
        t = transfers[i]
        if not t.flags & _LINKED:  # a single transfer, not linked
            # Most transfers of a large batch are plain ones that pass: ``_plain`` applies those
            # (its result is the OK already in place), anything else takes every rule in order.
            if t.flags or t.timeout or t.pending_id is not None or not _plain(run, t):
                results[i] = _one(run, t)
            i += 1
            continue
        end = i + 1
        while end < n and transfers[end].flags & _LINKED:
            end += 1
        chain = transfers[i : end + 1] if end < n else transfers[i:end]
        _chain(run, chain, results, i, open_chain=end == n)
        i += len(chain)
    deltas: dict[uuid.UUID, tuple[int, int, int, int]] = {}
    for key, account in accounts.items():
        before = initial[key]
        if tuple(account.balances) != before:
            b = account.balances
            deltas[key] = (b[0] - before[0], b[1] - before[1], b[2] - before[2], b[3] - before[3])
    new_pending = [(k, p) for k, p in pending.items() if k not in initial_states]
    resolved = [(k, p) for k, p in pending.items() if k in initial_states and p.state != initial_states[k]]
    # A reservation made and resolved within the same batch is inserted with its final state.
    return BatchOutcome(
        results, list(run.applied.values()), deltas, new_pending, resolved, list(run.new_failed.items())
    )


def _chain(
    run: Run, chain: list[Transfer], results: list[TransferResult], start: int, *, open_chain: bool
) -> None:
    undo: list[tuple[str, uuid.UUID, object]] = []
    run.undo = undo
    failure: tuple[int, TransferResult] | None = None
    codes: list[TransferResult] = []
    try:
        for k, transfer in enumerate(chain):
            if open_chain and k == len(chain) - 1:
                failure = (k, R.LINKED_EVENT_CHAIN_OPEN)
                break
            code = _one(run, transfer, record_failure=False)
            codes.append(code)
            if code is not R.OK and not (code is R.EXISTS and all(c is R.EXISTS for c in codes)):
                failure = (k, code)
                break
        if failure is None and any(c is R.EXISTS for c in codes) and not all(c is R.EXISTS for c in codes):
            first = next(k for k, c in enumerate(codes) if c is R.EXISTS)
            failure = (first, R.EXISTS)
    finally:
        run.undo = None
    if failure is None:
        for k, code in enumerate(codes):
            results[start + k] = code
        return
    run.rollback(undo)
    index, code = failure
    for k in range(len(chain)):
        results[start + k] = R.LINKED_EVENT_FAILED
    results[start + index] = code
    if code in TRANSIENT_RESULTS:
        run.new_failed[chain[index].id] = code


def _one(run: Run, t: Transfer, *, record_failure: bool = True) -> TransferResult:
    code = _apply(run, t)
    if record_failure and code in TRANSIENT_RESULTS:
        run.new_failed[t.id] = code
    return code


def _plain(run: Run, t: Transfer) -> bool:
    """Apply ``t`` (no flags, no pending id, no timeout, outside a chain) if it passes every rule.

    False, with nothing changed, whenever any rule might say otherwise (a known or failed id,
    a bad field, an unknown, closed or other-ledger account, a limit or an overflow): ``_apply``
    then decides with every rule in order, so the result is always exactly ``_apply``'s. The
    checks are those of ``_apply`` for this shape, with the same arithmetic; balances change in
    place because no chain can need them back.
    """
    tid = t.id
    if tid in run.applied or (run.existing and tid in run.existing):
        return False
    if (run.failed and tid in run.failed) or (run.new_failed and tid in run.new_failed):
        return False
    amount = t.amount
    if t.code <= 0 or amount is None or amount <= 0 or amount > AMOUNT_MAX:
        return False
    debit_id, credit_id = t.debit_account_id, t.credit_account_id
    if debit_id is None or credit_id is None or debit_id == credit_id:
        return False
    debit = run.accounts.get(debit_id)
    credit = run.accounts.get(credit_id)
    if debit is None or credit is None or debit.ledger != t.ledger or credit.ledger != t.ledger:
        return False
    if (debit.flags | credit.flags) & _CLOSED:
        return False
    d, c = debit.balances, credit.balances
    if max(d[0], d[1], c[2], c[3]) > AMOUNT_MAX - amount:
        return False
    if debit.flags & _DMNEC and d[0] + d[1] + amount > d[3] + debit.overdraft_limit:
        return False
    if credit.flags & _CMNED and c[2] + c[3] + amount > c[1]:
        return False
    d[1] += amount
    c[3] += amount
    run.applied[tid] = TransferRow(
        tid,
        debit_id,
        credit_id,
        amount,
        None,
        t.ledger,
        t.code,
        0,
        0,
        t.user_data_128,
        t.user_data_64,
        t.user_data_32,
        t.reference,
        run.now,
    )
    return True


def _resolve_fields(run: Run, t: Transfer) -> tuple[uuid.UUID | None, uuid.UUID | None, int | None]:
    """A post's or void's accounts and amount, filled in from its pending transfer."""
    debit, credit, amount = t.debit_account_id, t.credit_account_id, t.amount
    if t.flags & _RESOLVE and t.pending_id is not None:
        p = run.pending.get(t.pending_id)
        if p is not None:
            debit = debit or p.debit_account_id
            credit = credit or p.credit_account_id
            if amount is None:
                amount = p.amount
    return debit, credit, amount


def _same(row: TransferRow, t: Transfer, debit: object, credit: object, amount: object) -> bool:
    return (
        row.debit_account_id == debit
        and row.credit_account_id == credit
        and row.amount == amount
        and row.pending_id == t.pending_id
        and row.ledger == t.ledger
        and row.code == t.code
        and row.flags == t.flags
        and row.timeout == t.timeout
        and row.user_data_128 == t.user_data_128
        and row.user_data_64 == t.user_data_64
        and row.user_data_32 == t.user_data_32
        and row.reference == t.reference
    )


def _apply(run: Run, t: Transfer) -> TransferResult:
    debit_id, credit_id, amount = _resolve_fields(run, t)
    row = run.applied.get(t.id) or run.existing.get(t.id)
    if row is not None:
        return R.EXISTS if _same(row, t, debit_id, credit_id, amount) else R.EXISTS_WITH_DIFFERENT_FIELDS
    if t.id in run.failed or t.id in run.new_failed:
        return R.ID_ALREADY_FAILED
    flags = t.flags
    if flags & ~_KNOWN_FLAGS or (flags & _TWO_PHASE) not in (0, _PENDING, _POST, _VOID):
        return R.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if t.code <= 0:
        return R.CODE_MUST_NOT_BE_ZERO
    resolving = bool(flags & _RESOLVE)
    p: PendingState | None = None
    if resolving:
        if t.pending_id is None:
            return R.PENDING_ID_MUST_NOT_BE_NONE
        if t.pending_id == t.id:
            return R.PENDING_ID_MUST_BE_DIFFERENT
        if t.timeout:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        p = run.pending.get(t.pending_id)
        if p is None:
            # A transfer applied earlier in this batch but not pending, or none at all.
            applied = t.pending_id in run.applied
            return R.PENDING_TRANSFER_NOT_PENDING if applied else R.PENDING_TRANSFER_NOT_FOUND
        if not p.is_pending:
            return R.PENDING_TRANSFER_NOT_PENDING
        if debit_id != p.debit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if credit_id != p.credit_account_id:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.ledger != p.ledger:
            return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
    else:
        if t.pending_id is not None:
            return R.PENDING_ID_MUST_BE_NONE
        if t.timeout and not flags & _PENDING:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if t.timeout < 0:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if debit_id is None:
        return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_NONE
    if credit_id is None:
        return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_NONE
    if amount is None or amount <= 0:
        return R.AMOUNT_MUST_NOT_BE_ZERO
    if amount > AMOUNT_MAX:
        return R.AMOUNT_EXCEEDS_LIMIT
    if debit_id == credit_id:
        return R.ACCOUNTS_MUST_BE_DIFFERENT
    debit = run.accounts.get(debit_id)
    if debit is None:
        return R.DEBIT_ACCOUNT_NOT_FOUND
    credit = run.accounts.get(credit_id)
    if credit is None:
        return R.CREDIT_ACCOUNT_NOT_FOUND
    if debit.ledger != credit.ledger:
        return R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER
    if t.ledger != debit.ledger:
        return R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS
    if p is not None:
        return _resolve(run, t, p, amount)
    if debit.flags & _CLOSED:
        return R.DEBIT_ACCOUNT_CLOSED
    if credit.flags & _CLOSED:
        return R.CREDIT_ACCOUNT_CLOSED
    dp, dpo, _, _ = debit.balances
    cp, cpo = credit.balances[2], credit.balances[3]
    if max(dp, dpo, cp, cpo) > AMOUNT_MAX - amount:
        return R.OVERFLOW
    if debit.flags & _DMNEC and (dp + dpo + amount > debit.balances[3] + debit.overdraft_limit):
        return R.EXCEEDS_CREDITS
    if credit.flags & _CMNED and cp + cpo + amount > credit.balances[1]:
        return R.EXCEEDS_DEBITS
    is_pending = bool(flags & _PENDING)
    if is_pending:
        run.set_balances(debit_id, [dp + amount, *debit.balances[1:]])
        b = credit.balances
        run.set_balances(credit_id, [b[0], b[1], b[2] + amount, b[3]])
        expires = run.now + dt.timedelta(seconds=t.timeout) if t.timeout else None
        run.add_pending(
            t.id,
            PendingState(debit_id, credit_id, amount, t.ledger, t.code, True, expires, "pending"),
        )
    else:
        b = debit.balances
        run.set_balances(debit_id, [b[0], b[1] + amount, b[2], b[3]])
        b = credit.balances
        run.set_balances(credit_id, [b[0], b[1], b[2], b[3] + amount])
    run.add_row(_row(t, debit_id, credit_id, amount, run.now))
    return R.OK


def _resolve(run: Run, t: Transfer, p: PendingState, amount: int) -> TransferResult:
    assert t.pending_id is not None
    if p.state == "posted":
        return R.PENDING_TRANSFER_ALREADY_POSTED
    if p.state == "voided":
        return R.PENDING_TRANSFER_ALREADY_VOIDED
    if p.state == "expired":
        return R.PENDING_TRANSFER_EXPIRED
    if p.expires_at is not None and p.expires_at <= run.now:
        expire(run.accounts, p, setter=run.set_balances)
        run.set_pending_state(t.pending_id, "expired", None)
        return R.PENDING_TRANSFER_EXPIRED
    post = bool(t.flags & _POST)
    if post and amount > p.amount:
        return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
    if not post and amount != p.amount:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
    d = run.accounts[p.debit_account_id].balances
    c = run.accounts[p.credit_account_id].balances
    posted = amount if post else 0
    run.set_balances(p.debit_account_id, [d[0] - p.amount, d[1] + posted, d[2], d[3]])
    run.set_balances(p.credit_account_id, [c[0], c[1], c[2] - p.amount, c[3] + posted])
    run.set_pending_state(t.pending_id, "posted" if post else "voided", t.id)
    run.add_row(_row(t, p.debit_account_id, p.credit_account_id, amount, run.now))
    return R.OK


def expire(
    accounts: dict[uuid.UUID, AccountState],
    p: PendingState,
    *,
    setter: Callable[[uuid.UUID, list[int]], None],
) -> None:
    """Release an expired reservation's pending totals (the state change is the caller's)."""
    d = accounts[p.debit_account_id].balances
    setter(p.debit_account_id, [d[0] - p.amount, d[1], d[2], d[3]])
    c = accounts[p.credit_account_id].balances
    setter(p.credit_account_id, [c[0], c[1], c[2] - p.amount, c[3]])


def _row(t: Transfer, debit: uuid.UUID, credit: uuid.UUID, amount: int, now: dt.datetime) -> TransferRow:
    return TransferRow(
        t.id,
        debit,
        credit,
        amount,
        t.pending_id,
        t.ledger,
        t.code,
        int(t.flags),
        t.timeout,
        t.user_data_128,
        t.user_data_64,
        t.user_data_32,
        t.reference,
        now,
    )
