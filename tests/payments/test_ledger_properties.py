"""Random sequences of ledger operations against the database, the model and the invariants.

Each example gets fresh accounts and replays batches of random operations (transfers, pending
transfers, posts, partial posts, voids, linked chains, retries with the same id, ids reused with
other fields, clock ticks that expire reservations). After every step the results and all four
totals of every account must equal the plain Python model's; at the end ``check_ledger`` must
find nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments.ledger import Transfer, TransferFlags, create_transfers, expire_pending, lookup_balances
from payments.ledger.check import check_ledger
from tests.payments.conftest import make_chart
from tests.payments.model import Model

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
LINKED = int(TransferFlags.LINKED)

account = st.integers(0, 3)
amount = st.integers(1, 400)
plain = st.tuples(st.just("t"), account, account, amount, st.booleans(), st.sampled_from([0, 0, 10, 60]))
ref = st.integers(0, 10_000)
op = st.one_of(
    plain,
    st.tuples(st.just("post"), ref, st.one_of(st.none(), st.integers(1, 400))),
    st.tuples(st.just("void"), ref),
    st.tuples(st.just("retry"), ref),
    st.tuples(st.just("conflict"), ref),
    st.tuples(st.just("chain"), st.lists(st.tuples(account, account, amount), min_size=2, max_size=3)),
)
step = st.one_of(st.tuples(st.just("tick"), st.integers(1, 90)), st.lists(op, min_size=1, max_size=5))


def build(item: Any, accounts: list[uuid.UUID], history: list[Transfer]) -> list[Transfer]:
    kind = item[0]
    if kind == "t":
        _, d, c, amt, pending, timeout = item
        flags = PENDING if pending else 0
        return [
            Transfer(
                id=uuid.uuid4(),
                debit_account_id=accounts[d],
                credit_account_id=accounts[c],
                amount=amt,
                flags=flags,
                timeout=timeout if pending else 0,
            )
        ]
    if kind == "chain":
        chain = [
            Transfer(id=uuid.uuid4(), debit_account_id=accounts[d], credit_account_id=accounts[c], amount=a)
            for d, c, a in item[1]
        ]
        return [msgspec.structs.replace(t, flags=LINKED) for t in chain[:-1]] + [chain[-1]]
    if not history:
        return []
    target = history[item[1] % len(history)]
    if kind == "post":
        return [Transfer(id=uuid.uuid4(), pending_id=target.id, flags=POST, amount=item[2])]
    if kind == "void":
        return [Transfer(id=uuid.uuid4(), pending_id=target.id, flags=VOID)]
    if kind == "retry":
        return [target]
    assert kind == "conflict"
    return [msgspec.structs.replace(target, amount=(target.amount or 0) + 1, flags=target.flags & ~LINKED)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=20), funding=st.integers(0, 600))
async def test_random_operations_match_the_model_and_keep_the_invariants(
    db: Any, steps: list[Any], funding: int
) -> None:
    chart = await make_chart(db)
    accounts = chart.all
    model = Model(
        limits={chart.control: None, chart.purse: 0, chart.purse_overdraft: 100, chart.operator: None}
    )
    now = T0
    history: list[Transfer] = []
    if funding:
        first = [
            Transfer(
                id=uuid.uuid4(), debit_account_id=chart.control, credit_account_id=chart.purse, amount=funding
            )
        ]
        assert await create_transfers(db, first, now=now) == model.batch(first, now)
        history += first
    for item in steps:
        if isinstance(item, tuple) and item[0] == "tick":
            now += dt.timedelta(seconds=item[1])
            # The sweep is ledger-wide (earlier examples share the database): compare balances, not counts.
            assert await expire_pending(db, now=now) >= model.expire_due(now)
        else:
            batch = [t for op_ in item for t in build(op_, accounts, history)]
            if not batch:
                continue
            expected = model.batch(batch, now)
            assert await create_transfers(db, batch, now=now) == expected, batch
            history += batch
        stored = await lookup_balances(db, accounts)
        for a in accounts:
            b = stored[a]
            assert (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted) == model.balances(
                a
            )
    assert await check_ledger(db) == []


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32),
    batches=st.integers(1, 3),
    funding=st.sampled_from([10**9, 10**9, 50_000, 500, 0]),
    odd=st.sampled_from([0.0, 0.0, 0.01, 0.05]),
)
async def test_large_batches_match_the_model(
    db: Any, seed: int, batches: int, funding: int, odd: float
) -> None:
    # Large batches of plain transfers are written ahead (payments.ledger.ahead) when all of them
    # pass, and take the usual way otherwise: either way the results are the model's. ``odd``:
    # the share of transfers that may not pass (self-transfers, retried and reused ids).
    import random

    from payments.ledger.store import SERIAL_BATCH_MIN

    rnd = random.Random(seed)
    chart = await make_chart(db)
    accounts = chart.all
    model = Model(
        limits={chart.control: None, chart.purse: 0, chart.purse_overdraft: 100, chart.operator: None}
    )
    history: list[Transfer] = []
    if funding:
        first = [
            Transfer(id=uuid.uuid4(), debit_account_id=chart.control, credit_account_id=purse, amount=funding)
            for purse in (chart.purse, chart.purse_overdraft)
        ]
        assert await create_transfers(db, first, now=T0) == model.batch(first, T0)
        history += first
    for _ in range(batches):
        batch: list[Transfer] = []
        for _ in range(SERIAL_BATCH_MIN + rnd.randrange(64)):
            if history and rnd.random() < odd:
                target = rnd.choice(history)
                batch.append(target if rnd.random() < 0.5 else msgspec.structs.replace(target, amount=7))
                continue
            debit = rnd.choice([chart.control, chart.control, chart.purse, chart.purse_overdraft])
            credit = rnd.choice(accounts) if rnd.random() < odd else chart.operator
            amount = rnd.randint(1, 400)
            batch.append(
                Transfer(id=uuid.uuid4(), debit_account_id=debit, credit_account_id=credit, amount=amount)
            )
        assert await create_transfers(db, batch, now=T0) == model.batch(batch, T0)
        history += batch
        stored = await lookup_balances(db, accounts)
        for a in accounts:
            b = stored[a]
            assert (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted) == model.balances(
                a
            )
    assert await check_ledger(db) == []
