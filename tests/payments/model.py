"""A deliberately plain model of the ledger, written apart from ``payments.ledger.engine``.

It keeps balances in dicts and applies one transfer at a time (a batch is just a loop), so the
property test can compare the database's results and balances against it.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from dataclasses import dataclass, field

from payments.ledger import Transfer, TransferFlags
from payments.ledger import TransferResult as R

PENDING, POST, VOID, LINKED = (
    TransferFlags.PENDING,
    TransferFlags.POST_PENDING_TRANSFER,
    TransferFlags.VOID_PENDING_TRANSFER,
    TransferFlags.LINKED,
)
TRANSIENT = {R.EXCEEDS_CREDITS, R.PENDING_TRANSFER_NOT_FOUND, R.PENDING_TRANSFER_EXPIRED}


@dataclass
class Reservation:
    """A pending transfer's hold, as the model keeps it."""

    debit: uuid.UUID
    credit: uuid.UUID
    amount: int
    expires: dt.datetime | None
    state: str = "pending"  # then posted, voided or expired


@dataclass
class Model:
    limits: dict[uuid.UUID, int | None]  # None: no balance rule; n: overdraft limit in fen
    dp: dict[uuid.UUID, int] = field(default_factory=dict)
    dpo: dict[uuid.UUID, int] = field(default_factory=dict)
    cp: dict[uuid.UUID, int] = field(default_factory=dict)
    cpo: dict[uuid.UUID, int] = field(default_factory=dict)
    done: dict[uuid.UUID, tuple[object, ...]] = field(default_factory=dict)  # id -> resolved fields
    failed: set[uuid.UUID] = field(default_factory=set)
    reserved: dict[uuid.UUID, Reservation] = field(default_factory=dict)
    plain: set[uuid.UUID] = field(default_factory=set)

    def __post_init__(self) -> None:
        for a in self.limits:
            self.dp[a] = self.dpo[a] = self.cp[a] = self.cpo[a] = 0

    def balances(self, a: uuid.UUID) -> tuple[int, int, int, int]:
        return (self.dp[a], self.dpo[a], self.cp[a], self.cpo[a])

    def batch(self, transfers: list[Transfer], now: dt.datetime) -> list[R]:
        out: list[R] = []
        i = 0
        while i < len(transfers):
            if not transfers[i].flags & LINKED:
                out.append(self.one(transfers[i], now))
                i += 1
                continue
            j = i
            while j < len(transfers) and transfers[j].flags & LINKED:
                j += 1
            chain = transfers[i : j + 1]
            saved = copy.deepcopy(self.__dict__)
            codes: list[R] = []
            bad: tuple[int, R] | None = None
            if j == len(transfers):
                bad = (len(chain) - 1, R.LINKED_EVENT_CHAIN_OPEN)
                chain = transfers[i:j]
            for k, t in enumerate(chain):
                if bad is not None and k == bad[0]:
                    break
                code = self.one(t, now, record=False)
                codes.append(code)
                if code is not R.OK and not (code is R.EXISTS and all(c is R.EXISTS for c in codes)):
                    bad = (k, code)
                    break
            if bad is None and R.EXISTS in codes and any(c is not R.EXISTS for c in codes):
                bad = (codes.index(R.EXISTS), R.EXISTS)
            if bad is None:
                out += codes
            else:
                self.__dict__.update(saved)
                result = [R.LINKED_EVENT_FAILED] * len(chain)
                result[bad[0]] = bad[1]
                if bad[1] in TRANSIENT:
                    self.failed.add(chain[bad[0]].id)
                out += result
            i += len(chain)
        return out

    def one(self, t: Transfer, now: dt.datetime, *, record: bool = True) -> R:
        code = self._one(t, now)
        if record and code in TRANSIENT:
            self.failed.add(t.id)
        return code

    def _one(self, t: Transfer, now: dt.datetime) -> R:
        resolving = bool(t.flags & (POST | VOID))
        debit, credit, amount = t.debit_account_id, t.credit_account_id, t.amount
        r = self.reserved.get(t.pending_id) if resolving and t.pending_id else None
        if r is not None:
            debit, credit = debit or r.debit, credit or r.credit
            amount = r.amount if amount is None else amount
        fields = (debit, credit, amount, t.pending_id, t.flags, t.timeout, t.user_data_64)
        if t.id in self.done:
            return R.EXISTS if self.done[t.id] == fields else R.EXISTS_WITH_DIFFERENT_FIELDS
        if t.id in self.failed:
            return R.ID_ALREADY_FAILED
        if resolving:
            if r is None:
                return (
                    R.PENDING_TRANSFER_NOT_PENDING
                    if t.pending_id in self.done
                    else R.PENDING_TRANSFER_NOT_FOUND
                )
            assert isinstance(amount, int)
            if r.state == "posted":
                return R.PENDING_TRANSFER_ALREADY_POSTED
            if r.state == "voided":
                return R.PENDING_TRANSFER_ALREADY_VOIDED
            if r.state == "expired":
                return R.PENDING_TRANSFER_EXPIRED
            d, c, reserved = r.debit, r.credit, r.amount
            if r.expires is not None and r.expires <= now:
                assert t.pending_id is not None  # r was found by it
                self.expire(t.pending_id)
                return R.PENDING_TRANSFER_EXPIRED
            if t.flags & POST and amount > reserved:
                return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
            if t.flags & VOID and amount != reserved:
                return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
            self.dp[d] -= reserved
            self.cp[c] -= reserved
            if t.flags & POST:
                self.dpo[d] += amount
                self.cpo[c] += amount
            r.state = "posted" if t.flags & POST else "voided"
            self.done[t.id] = fields
            return R.OK
        assert debit is not None and credit is not None and amount is not None
        if amount <= 0:
            return R.AMOUNT_MUST_NOT_BE_ZERO
        if debit == credit:
            return R.ACCOUNTS_MUST_BE_DIFFERENT
        limit = self.limits[debit]
        if limit is not None and self.dp[debit] + self.dpo[debit] + amount > self.cpo[debit] + limit:
            return R.EXCEEDS_CREDITS
        if t.flags & PENDING:
            self.dp[debit] += amount
            self.cp[credit] += amount
            expires = now + dt.timedelta(seconds=t.timeout) if t.timeout else None
            self.reserved[t.id] = Reservation(debit, credit, amount, expires)
        else:
            self.dpo[debit] += amount
            self.cpo[credit] += amount
            self.plain.add(t.id)
        self.done[t.id] = fields
        return R.OK

    def expire(self, pending_id: uuid.UUID) -> None:
        r = self.reserved[pending_id]
        self.dp[r.debit] -= r.amount
        self.cp[r.credit] -= r.amount
        r.state = "expired"

    def expire_due(self, now: dt.datetime) -> int:
        due = [
            k
            for k, r in self.reserved.items()
            if r.state == "pending" and r.expires is not None and r.expires <= now
        ]
        for k in due:
            self.expire(k)
        return len(due)
