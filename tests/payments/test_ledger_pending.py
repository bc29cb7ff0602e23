"""The one-transfer fast path (``reserve_pending_txn`` / ``resolve_pending_txn``) against the
general path (``create_transfers_txn`` with a batch of one), on a real database.

Random sequences of single reservations, posts (full, partial, too much, zero), voids, retries,
ids reused with other fields, resolutions of what is not pending or does not exist, clock ticks
that expire reservations, and plain transfers in between, are applied twice: to one set of
accounts through the general path and to a twin set through the fast path, each transfer with
its own id in each (the twin's ids are derived from the same logical id). Every result, every
account's four totals after every step, and in the end every row of ``transfers``,
``pending_transfers`` and ``failed_transfers`` must be the same, ids translated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from payments.ledger import (
    AMOUNT_MAX,
    Account,
    AccountCode,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    create_accounts,
    create_transfers,
    create_transfers_txn,
    expire_pending,
    lookup_balances,
    refusal,
    reserve_call,
    reserve_pending_txn,
    resolve_call,
    resolve_pending_txn,
)
from payments.ledger import TransferResult as R
from payments.ledger.check import check_ledger
from tests.payments.conftest import PENDING, POST, T0, VOID

DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
CLOSED = int(AccountFlags.CLOSED)

# The logical accounts (index → how each world opens it); the last one is never opened.
SLOTS = [
    {"code": AccountCode.CONTROL},
    {"code": AccountCode.EPURSE, "flags": DMNEC},
    {"code": AccountCode.EPURSE, "flags": DMNEC, "overdraft_limit": 100},
    {"code": AccountCode.OPERATOR_PAYABLE},
    {"code": AccountCode.OPERATOR_PAYABLE, "flags": CMNED},
    {"code": AccountCode.EPURSE, "flags": CLOSED},
    {"code": AccountCode.OPERATOR_PAYABLE, "flags": CLOSED},
    {"code": AccountCode.CONTROL, "ledger": 840},
    None,
]
LOGICAL_ACCOUNTS = [uuid.UUID(int=i + 1) for i in range(len(SLOTS))]


class World:
    """One set of accounts and ids: the logical transfers, translated to this world's."""

    def __init__(self, fast: bool) -> None:
        self.fast = fast
        self.namespace = uuid.uuid4()
        self.accounts = {logical: uuid.uuid4() for logical in LOGICAL_ACCOUNTS}
        self.back: dict[uuid.UUID, uuid.UUID] = {v: k for k, v in self.accounts.items()}

    async def open(self, db: Any) -> None:
        accounts = [
            Account(id=self.accounts[logical], **slot)  # type: ignore[arg-type]
            for logical, slot in zip(LOGICAL_ACCOUNTS, SLOTS, strict=True)
            if slot is not None
        ]
        assert await create_accounts(db, accounts) == [AccountResult.OK] * len(accounts)

    def id(self, logical: uuid.UUID | None) -> uuid.UUID | None:
        if logical is None:
            return None
        if logical in self.accounts:
            return self.accounts[logical]
        mine = uuid.uuid5(self.namespace, str(logical))
        self.back[mine] = logical
        return mine

    def translate(self, t: Transfer) -> Transfer:
        return msgspec.structs.replace(
            t,
            id=self.id(t.id),
            pending_id=self.id(t.pending_id),
            debit_account_id=self.id(t.debit_account_id),
            credit_account_id=self.id(t.credit_account_id),
        )

    async def apply(self, db: Any, t: Transfer, now: dt.datetime) -> R:
        mine = self.translate(t)
        async with db.transaction():
            if not self.fast or not t.flags & (PENDING | POST | VOID):
                [result] = await create_transfers_txn(db, [mine], now=now)
                return result
            if t.flags & PENDING:
                return await reserve_pending_txn(db, mine, now=now)
            return await resolve_pending_txn(db, mine, now=now)

    async def balances(self, db: Any) -> list[tuple[int, int, int, int] | None]:
        stored = await lookup_balances(db, list(self.accounts.values()))
        out: list[tuple[int, int, int, int] | None] = []
        for logical in LOGICAL_ACCOUNTS:
            b = stored.get(self.accounts[logical])
            out.append(
                None
                if b is None
                else (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)
            )
        return out

    async def rows(self, db: Any) -> tuple[list[tuple[Any, ...]], ...]:
        """Every row this world wrote, its ids translated back, sorted."""
        ids = [k for k, v in self.back.items() if v not in self.accounts]
        back = self.back

        def tr(value: Any) -> Any:
            return back.get(value, value) if isinstance(value, uuid.UUID) else value

        tables = (
            "SELECT * FROM payments.transfers WHERE id = ANY($1::uuid[])",
            "SELECT * FROM payments.pending_transfers WHERE id = ANY($1::uuid[])",
            "SELECT * FROM payments.failed_transfers WHERE id = ANY($1::uuid[])",
        )
        out = []
        for query in tables:
            rows = [tuple(tr(v) for v in r.values()) for r in await db.fetch(query, ids)]
            out.append(sorted(rows, key=repr))
        return tuple(out)


# Mostly the accounts that take transfers (control, the purses, the operator), sometimes the others.
account = st.sampled_from([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8])
amount = st.one_of(st.integers(1, 400), st.sampled_from([0, -1, 2**62, AMOUNT_MAX]))
maybe_amount = st.one_of(st.none(), st.integers(-1, 450))
ref = st.integers(0, 10_000)
some_fields = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from([1, 602, 0]),
        "user_data_64": st.integers(-(2**63), 2**63 - 1),
        "user_data_32": st.integers(0, 5),
        "user_data_128": st.just(uuid.UUID(int=99)),
        "reference": st.sampled_from(["load:1", "x"]),
        "ledger": st.just(840),
    },
).filter(lambda more: len(more) <= 2)
extras = st.sampled_from([False, False, False, True]).flatmap(lambda odd: some_fields if odd else st.just({}))
# Usual reservations (money into a purse or to the operator), then their posts and voids, come
# most often (a weighted choice of the kind: hypothesis' own choice between strategies favours
# the simple ones); the rest reaches every other rule.
debits, credits = st.sampled_from([0, 0, 0, 1, 2]), st.sampled_from([1, 2, 3, 3, 3, 4])
usual = st.tuples(debits, credits).filter(lambda dc: dc[0] != dc[1])
which_accounts = st.sampled_from(["none", "same", "swap"])  # of a post: none, the reservation's, swapped
OPS = {
    "reserve": st.builds(
        lambda dc, amount, timeout: ("reserve", *dc, amount, timeout, {}),
        usual, st.integers(1, 400), st.sampled_from([0, 0, 0, 10, 60]),
    ),
    "post": st.tuples(st.just("post"), ref, st.none(), st.just("none"), st.just({})),
    "void": st.tuples(st.just("void"), ref, st.none(), st.just({})),
    "odd reserve": st.tuples(st.just("reserve"), account, account, amount, st.sampled_from([0, 10]), extras),
    "fund": st.tuples(st.just("fund"), account, account, st.integers(1, 500)),
    "odd post": st.tuples(st.just("post"), ref, maybe_amount, which_accounts, extras),
    "odd void": st.tuples(st.just("void"), ref, maybe_amount, extras),
    "retry": st.tuples(st.just("retry"), ref),
    "conflict": st.tuples(st.just("conflict"), ref, st.sampled_from(["amount", "reference", "code", "ud64"])),
    "lost": st.tuples(st.just("lost"), st.booleans()),  # a post or void of no transfer at all
    "self": st.tuples(st.just("self"), ref),  # pending id = own id: the general path answers
    "tick": st.tuples(st.just("tick"), st.integers(1, 90), st.booleans()),
}  # fmt: skip
WEIGHTS = {"reserve": 6, "post": 4, "void": 2, "odd reserve": 2, "fund": 1, "odd post": 2, "odd void": 1,
           "retry": 2, "conflict": 1, "lost": 1, "self": 1, "tick": 2}  # fmt: skip
op = st.sampled_from([k for k, n in WEIGHTS.items() for _ in range(n)]).flatmap(OPS.__getitem__)


def build(item: Any, history: list[Transfer], reserved: list[Transfer]) -> Transfer | None:
    kind = item[0]
    if kind == "reserve":
        _, d, c, amt, timeout, more = item
        return Transfer(
            id=uuid.uuid4(), debit_account_id=LOGICAL_ACCOUNTS[d], credit_account_id=LOGICAL_ACCOUNTS[c],
            amount=amt, flags=PENDING, timeout=timeout, **more,
        )  # fmt: skip
    if kind == "fund":
        _, d, c, amt = item
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=LOGICAL_ACCOUNTS[d],
            credit_account_id=LOGICAL_ACCOUNTS[c],
            amount=amt,
        )
    if kind == "lost":
        return Transfer(id=uuid.uuid4(), pending_id=uuid.uuid4(), flags=POST if item[1] else VOID)
    if not history:
        return None
    # Counted from the latest (hypothesis draws small numbers most): mostly a recent transfer, and
    # for a post or void mostly a recent reservation that was made.
    target: Transfer = history[-1 - item[1] % len(history)]
    if kind in ("post", "void") and reserved and item[1] % 4 != 3:
        target = reserved[-1 - item[1] % len(reserved)]
    if kind == "post":
        _, _, amt, accounts, more = item
        debit, credit = None, None
        if accounts == "same":
            debit, credit = target.debit_account_id, target.credit_account_id
        elif accounts == "swap":
            debit, credit = target.credit_account_id, target.debit_account_id
        return Transfer(
            id=uuid.uuid4(), pending_id=target.id, flags=POST, amount=amt,
            debit_account_id=debit, credit_account_id=credit, **more,
        )  # fmt: skip
    if kind == "void":
        _, _, amt, more = item
        return Transfer(id=uuid.uuid4(), pending_id=target.id, flags=VOID, amount=amt, **more)
    if kind == "retry":
        return target
    if kind == "self":
        return Transfer(id=target.id, pending_id=target.id, flags=POST)
    assert kind == "conflict"
    field = item[2]
    if field == "amount":
        return msgspec.structs.replace(target, amount=(target.amount or 0) + 1)
    if field == "reference":
        return msgspec.structs.replace(target, reference=(target.reference or "") + "!")
    if field == "ud64":
        return msgspec.structs.replace(target, user_data_64=None if target.user_data_64 else 1)
    return msgspec.structs.replace(target, code=target.code + 1)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(op, min_size=5, max_size=40), funding=st.integers(0, 600))
# Always, whatever hypothesis draws: a reservation expired by the sweep, then resolved; one that
# expires when it is resolved; a post retried; the post of a voided one; a partial post.
@example(
    steps=[
        ("reserve", 0, 1, 50, 10, {}),
        ("tick", 20, True),
        ("post", 0, None, "none", {}),
        ("void", 1, None, {}),
        ("retry", 0),
    ],
    funding=0,
)
@example(
    steps=[
        ("reserve", 0, 3, 50, 10, {}),
        ("tick", 20, False),
        ("void", 0, None, {}),
        ("retry", 0),
        ("post", 1, None, "same", {}),
    ],
    funding=0,
)
@example(
    steps=[
        ("reserve", 1, 3, 50, 0, {}),
        ("post", 0, 20, "same", {}),
        ("retry", 0),
        ("void", 1, None, {}),
        ("reserve", 1, 3, 50, 0, {}),
        ("void", 0, None, {}),
        ("post", 1, None, "none", {}),
    ],
    funding=100,
)
async def test_the_fast_path_matches_the_general_path(db: Any, steps: list[Any], funding: int) -> None:
    general, fast = World(fast=False), World(fast=True)
    await general.open(db)
    await fast.open(db)
    now = T0
    history: list[Transfer] = []
    reserved: list[Transfer] = []
    if funding:
        first = Transfer(
            id=uuid.uuid4(), debit_account_id=LOGICAL_ACCOUNTS[0], credit_account_id=LOGICAL_ACCOUNTS[1],
            amount=funding,
        )  # fmt: skip
        assert await general.apply(db, first, now) == await fast.apply(db, first, now) == R.OK
        history.append(first)
    for item in steps:
        if item[0] == "tick":
            now += dt.timedelta(seconds=item[1])
            if item[2]:  # the sweep, ledger-wide: both worlds' reservations due by now
                await expire_pending(db, now=now)
        else:
            t = build(item, history, reserved)
            if t is None:
                continue
            expected = await general.apply(db, t, now)
            assert await fast.apply(db, t, now) == expected, t
            history.append(t)
            if expected is R.OK and t.flags == PENDING:
                reserved.append(t)
        assert await fast.balances(db) == await general.balances(db)
    assert await fast.rows(db) == await general.rows(db)
    assert await check_ledger(db) == []


def test_which_transfers_the_functions_take() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    reservation = Transfer(id=uuid.uuid4(), debit_account_id=a, credit_account_id=b, amount=5, flags=PENDING)
    assert reserve_call(reservation) is not None
    for other in (
        msgspec.structs.replace(reservation, flags=PENDING | int(TransferFlags.LINKED)),
        msgspec.structs.replace(reservation, flags=0),
        msgspec.structs.replace(reservation, amount=0),
        msgspec.structs.replace(reservation, amount=AMOUNT_MAX + 1),
        msgspec.structs.replace(reservation, credit_account_id=a),
        msgspec.structs.replace(reservation, code=0),
        msgspec.structs.replace(reservation, timeout=-1),
        msgspec.structs.replace(reservation, pending_id=uuid.uuid4()),
        msgspec.structs.replace(reservation, user_data_32=2**31),
    ):
        assert reserve_call(other) is None, other
    post = Transfer(id=uuid.uuid4(), pending_id=reservation.id, flags=POST)
    assert resolve_call(post) is not None
    assert resolve_call(msgspec.structs.replace(post, flags=VOID)) is not None
    for other in (
        msgspec.structs.replace(post, flags=POST | VOID),
        msgspec.structs.replace(post, pending_id=None),
        msgspec.structs.replace(post, pending_id=post.id),
        msgspec.structs.replace(post, timeout=5),
        msgspec.structs.replace(post, amount=2**63),
    ):
        assert resolve_call(other) is None, other
    call = reserve_call(reservation, first=4, refuse=True)
    assert call is not None
    assert call.sql.startswith("payments.reserve_pending($4::uuid, $5::uuid,")
    assert call.sql.endswith("$16::boolean)")
    assert call.args[-1] is True


async def test_a_refused_call_raises_and_leaves_nothing(db: Any) -> None:
    world = World(fast=True)
    await world.open(db)
    closed, control, purse = (world.accounts[LOGICAL_ACCOUNTS[i]] for i in (5, 0, 1))
    t = Transfer(id=uuid.uuid4(), debit_account_id=closed, credit_account_id=control, amount=5, flags=PENDING)
    call = reserve_call(t, refuse=True)
    assert call is not None
    with pytest.raises(asyncpg.PostgresError) as raised:
        await db.fetchval(f"SELECT {call.sql}", *call.args)
    assert refusal(raised.value) == R.DEBIT_ACCOUNT_CLOSED
    assert refusal(ValueError("x")) is None
    assert await db.fetchval("SELECT count(*) FROM payments.failed_transfers WHERE id = $1", t.id) == 0
    # Accepted, then refused: the post of a voided reservation.
    ok = msgspec.structs.replace(t, debit_account_id=control, credit_account_id=purse)
    call = reserve_call(ok, refuse=True)
    assert call is not None
    assert await db.fetchval(f"SELECT {call.sql}", *call.args) == "ok"
    assert await db.fetchval(f"SELECT {call.sql}", *call.args) == "exists"
    async with db.transaction():
        assert await resolve_pending_txn(db, Transfer(id=uuid.uuid4(), pending_id=t.id, flags=VOID)) == R.OK
    call = resolve_call(Transfer(id=uuid.uuid4(), pending_id=t.id, flags=POST), refuse=True)
    assert call is not None
    with pytest.raises(asyncpg.PostgresError) as raised:
        await db.fetchval(f"SELECT {call.sql}", *call.args)
    assert refusal(raised.value) == R.PENDING_TRANSFER_ALREADY_VOIDED
    assert await check_ledger(db) == []


async def test_the_functions_take_the_ledger_writer_lock() -> None:
    """The migration spells the writer lock and the flags as numbers: they must be the ledger's."""
    from importlib import resources

    from payments.ledger.sql import WRITER_LOCK

    text = (resources.files("payments") / "migrations" / "0004_single_pending.sql").read_text()
    assert text.count(f"pg_advisory_xact_lock_shared({WRITER_LOCK})") == 2
    assert (PENDING, POST, VOID, DMNEC, CMNED, CLOSED) == (2, 4, 8, 1, 2, 4)


async def test_concurrent_writers_keep_the_ledger_whole(database_url: str) -> None:
    """Fast-path reservations, posts and voids on shared accounts beside general small batches
    and large batches (which take the writer lock alone): no deadlock, nothing lost, the
    balance rules hold (the purses start with little money, so many reservations are refused)."""
    pool = await asyncpg.create_pool(database_url, min_size=6, max_size=6)
    assert pool is not None
    try:
        world = World(fast=True)
        await world.open(pool)
        control, purse, purse2, operator = (world.accounts[LOGICAL_ACCOUNTS[i]] for i in (0, 1, 2, 3))
        funding = [Transfer(id=uuid.uuid4(), debit_account_id=control, credit_account_id=p, amount=3_000)
                   for p in (purse, purse2)]  # fmt: skip
        assert await create_transfers(pool, funding) == [R.OK, R.OK]
        results: list[R] = []

        async def loads(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(40):
                debit, credit = rnd.sample([control, purse, purse2, operator], 2)
                t = Transfer(id=uuid.uuid4(), debit_account_id=debit, credit_account_id=credit,
                             amount=rnd.randint(1, 300), flags=PENDING)  # fmt: skip
                async with pool.acquire() as db, db.transaction():
                    results.append(await reserve_pending_txn(db, t))
                flag = POST if rnd.random() < 0.7 else VOID
                resolution = Transfer(id=uuid.uuid4(), pending_id=t.id, flags=flag)
                async with pool.acquire() as db, db.transaction():
                    results.append(await resolve_pending_txn(db, resolution))

        async def taps(seed: int) -> None:
            rnd = random.Random(seed)
            for _ in range(6):
                size = rnd.choice([3, 300])  # 300: a large batch, the writer lock exclusively
                batch = [
                    Transfer(id=uuid.uuid4(), debit_account_id=rnd.choice([purse, purse2]),
                             credit_account_id=operator, amount=rnd.randint(1, 5))
                    for _ in range(size)
                ]  # fmt: skip
                results.extend(await create_transfers(pool, batch))

        await asyncio.wait_for(asyncio.gather(*(loads(i) for i in range(4)), taps(10), taps(11)), 120)
        assert R.OK in results
        assert set(results) <= {R.OK, R.EXCEEDS_CREDITS, R.PENDING_TRANSFER_NOT_FOUND}
        async with pool.acquire() as db:
            assert await check_ledger(db) == []
            pending = await db.fetchval(
                "SELECT count(*) FROM payments.pending_transfers WHERE state = 'pending' "
                "AND debit_account_id = ANY($1::uuid[])",
                list(world.accounts.values()),
            )
            assert pending == 0
    finally:
        await pool.close()
