"""The ledger's rules on a real database, one rule per test."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest

from payments.ledger import (
    Account,
    AccountCode,
    AccountFlags,
    AccountResult,
    Transfer,
    TransferFlags,
    create_accounts,
    create_transfers,
    expire_pending,
    lookup_balances,
)
from payments.ledger import TransferResult as R
from payments.ledger.check import check_ledger
from tests.payments.conftest import PENDING, POST, T0, VOID, Chart

LINKED = int(TransferFlags.LINKED)


def tr(debit: uuid.UUID, credit: uuid.UUID, amount: int | None, **kw: Any) -> Transfer:
    return Transfer(
        id=kw.pop("id", uuid.uuid4()), debit_account_id=debit, credit_account_id=credit, amount=amount, **kw
    )


async def fund(db: Any, chart: Chart, amount: int = 1000) -> None:
    assert await create_transfers(db, [tr(chart.control, chart.purse, amount)]) == [R.OK]


async def balances(db: Any, account: uuid.UUID) -> tuple[int, int, int, int]:
    b = (await lookup_balances(db, [account]))[account]
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


async def assert_clean(db: Any) -> None:
    assert await check_ledger(db) == []


async def test_a_transfer_moves_posted_totals(db: Any, chart: Chart) -> None:
    await fund(db, chart, 500)
    assert await create_transfers(db, [tr(chart.purse, chart.operator, 200)]) == [R.OK]
    assert await balances(db, chart.purse) == (0, 200, 0, 500)
    assert await balances(db, chart.operator) == (0, 0, 0, 200)
    assert (await lookup_balances(db, [chart.purse]))[chart.purse].credit_balance == 300
    await assert_clean(db)


async def test_same_id_same_fields_is_exists_and_moves_nothing_twice(db: Any, chart: Chart) -> None:
    await fund(db, chart)
    t = tr(chart.purse, chart.operator, 200, user_data_64=7, reference="tap-1")
    assert await create_transfers(db, [t]) == [R.OK]
    assert await create_transfers(db, [t]) == [R.EXISTS]
    assert await create_transfers(db, [t, t]) == [R.EXISTS, R.EXISTS]
    assert await balances(db, chart.purse) == (0, 200, 0, 1000)
    changed = Transfer(**{**{f: getattr(t, f) for f in t.__struct_fields__}, "amount": 201})
    assert await create_transfers(db, [changed]) == [R.EXISTS_WITH_DIFFERENT_FIELDS]
    await assert_clean(db)


async def test_duplicate_id_within_one_batch(db: Any, chart: Chart) -> None:
    await fund(db, chart)
    t = tr(chart.purse, chart.operator, 10)
    other = tr(chart.purse, chart.operator, 11, id=t.id)
    assert await create_transfers(db, [t, t, other]) == [R.OK, R.EXISTS, R.EXISTS_WITH_DIFFERENT_FIELDS]
    assert await balances(db, chart.purse) == (0, 10, 0, 1000)


async def test_bad_requests_are_refused(db: Any, chart: Chart) -> None:
    await fund(db, chart)
    results = await create_transfers(
        db,
        [
            tr(chart.purse, chart.operator, 0),
            tr(chart.purse, chart.operator, -5),
            tr(chart.purse, chart.purse, 5),
            tr(chart.purse, uuid.uuid4(), 5),
            tr(uuid.uuid4(), chart.purse, 5),
            tr(chart.purse, chart.operator, 5, flags=PENDING | POST),
            tr(chart.purse, chart.operator, 5, timeout=10),
            tr(chart.purse, chart.operator, 5, code=0),
            tr(chart.purse, chart.operator, 5, ledger=840),
            tr(chart.purse, chart.operator, 2**63),
        ],
    )
    assert results == [
        R.AMOUNT_MUST_NOT_BE_ZERO,
        R.AMOUNT_MUST_NOT_BE_ZERO,
        R.ACCOUNTS_MUST_BE_DIFFERENT,
        R.CREDIT_ACCOUNT_NOT_FOUND,
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.FLAGS_ARE_MUTUALLY_EXCLUSIVE,
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
        R.CODE_MUST_NOT_BE_ZERO,
        R.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        R.AMOUNT_EXCEEDS_LIMIT,
    ]
    assert await balances(db, chart.purse) == (0, 0, 0, 1000)
    await assert_clean(db)


async def test_epurse_cannot_go_below_its_overdraft_limit(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    assert await create_transfers(db, [tr(chart.purse, chart.operator, 101)]) == [R.EXCEEDS_CREDITS]
    assert await create_transfers(db, [tr(chart.purse, chart.operator, 100)]) == [R.OK]
    assert await create_transfers(db, [tr(chart.purse_overdraft, chart.operator, 100)]) == [R.OK]
    assert await create_transfers(db, [tr(chart.purse_overdraft, chart.operator, 1)]) == [R.EXCEEDS_CREDITS]
    await assert_clean(db)


async def test_a_failed_id_stays_failed(db: Any, chart: Chart) -> None:
    t = tr(chart.purse, chart.operator, 50)
    assert await create_transfers(db, [t]) == [R.EXCEEDS_CREDITS]
    await fund(db, chart, 100)
    assert await create_transfers(db, [t]) == [R.ID_ALREADY_FAILED]
    assert await balances(db, chart.operator) == (0, 0, 0, 0)


async def test_pending_debits_count_against_the_balance(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    p = tr(chart.purse, chart.operator, 80, flags=PENDING)
    assert await create_transfers(db, [p]) == [R.OK]
    assert await balances(db, chart.purse) == (80, 0, 0, 100)
    assert await balances(db, chart.operator) == (0, 0, 80, 0)
    assert await create_transfers(db, [tr(chart.purse, chart.operator, 21)]) == [R.EXCEEDS_CREDITS]
    await assert_clean(db)


async def test_partial_post_releases_the_rest(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    p = tr(chart.purse, chart.operator, 80, flags=PENDING)
    await create_transfers(db, [p])
    post = Transfer(id=uuid.uuid4(), pending_id=p.id, amount=30, flags=POST)
    assert await create_transfers(db, [post]) == [R.OK]
    assert await balances(db, chart.purse) == (0, 30, 0, 100)
    assert await balances(db, chart.operator) == (0, 0, 0, 30)
    assert await create_transfers(db, [post]) == [R.EXISTS]
    again = Transfer(id=uuid.uuid4(), pending_id=p.id, flags=VOID)
    assert await create_transfers(db, [again]) == [R.PENDING_TRANSFER_ALREADY_POSTED]
    await assert_clean(db)


async def test_full_post_void_and_their_errors(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    a = tr(chart.purse, chart.operator, 40, flags=PENDING)
    b = tr(chart.purse, chart.operator, 40, flags=PENDING)
    plain = tr(chart.purse, chart.operator, 1)
    results = await create_transfers(
        db,
        [
            a,
            b,
            plain,
            Transfer(id=uuid.uuid4(), pending_id=a.id, flags=POST),  # full amount
            Transfer(id=uuid.uuid4(), pending_id=b.id, flags=POST, amount=41),
            Transfer(id=uuid.uuid4(), pending_id=b.id, flags=VOID, amount=39),
            Transfer(id=uuid.uuid4(), pending_id=b.id, flags=VOID, debit_account_id=chart.control),
            Transfer(id=uuid.uuid4(), pending_id=b.id, flags=VOID),
            Transfer(id=uuid.uuid4(), pending_id=b.id, flags=POST),
            Transfer(id=uuid.uuid4(), pending_id=plain.id, flags=POST),
            Transfer(id=uuid.uuid4(), pending_id=uuid.uuid4(), flags=POST),
        ],
    )
    assert results == [
        R.OK,
        R.OK,
        R.OK,
        R.OK,
        R.EXCEEDS_PENDING_TRANSFER_AMOUNT,
        R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT,
        R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        R.OK,
        R.PENDING_TRANSFER_ALREADY_VOIDED,
        R.PENDING_TRANSFER_NOT_PENDING,
        R.PENDING_TRANSFER_NOT_FOUND,
    ]
    assert await balances(db, chart.purse) == (0, 41, 0, 100)
    await assert_clean(db)


async def test_pending_transfers_expire(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    p = tr(chart.purse, chart.operator, 60, flags=PENDING, timeout=30)
    q = tr(chart.purse, chart.operator, 40, flags=PENDING, timeout=30)
    assert await create_transfers(db, [p, q], now=T0) == [R.OK, R.OK]
    assert await expire_pending(db, now=T0 + dt.timedelta(seconds=29)) == 0
    late = Transfer(id=uuid.uuid4(), pending_id=p.id, flags=POST)
    assert await create_transfers(db, [late], now=T0 + dt.timedelta(seconds=30)) == [
        R.PENDING_TRANSFER_EXPIRED
    ]
    assert await balances(db, chart.purse) == (40, 0, 0, 100)
    assert await expire_pending(db, now=T0 + dt.timedelta(seconds=31)) == 1
    assert await balances(db, chart.purse) == (0, 0, 0, 100)
    assert await create_transfers(db, [late]) == [R.ID_ALREADY_FAILED]
    await assert_clean(db)


async def test_linked_chain_fails_together(db: Any, chart: Chart) -> None:
    await fund(db, chart, 100)
    ok = [tr(chart.purse, chart.operator, 60, flags=LINKED), tr(chart.operator, chart.control, 60)]
    bad = [
        tr(chart.purse, chart.operator, 10, flags=LINKED),
        tr(chart.purse, chart.operator, 50, flags=LINKED),  # 60 + 10 + 50 > 100
        tr(chart.operator, chart.control, 60),
    ]
    single = tr(chart.control, chart.purse, 5)
    assert await create_transfers(db, [*ok, *bad, single]) == [
        R.OK,
        R.OK,
        R.LINKED_EVENT_FAILED,
        R.EXCEEDS_CREDITS,
        R.LINKED_EVENT_FAILED,
        R.OK,
    ]
    assert await balances(db, chart.purse) == (0, 60, 0, 105)
    assert await create_transfers(db, ok) == [R.EXISTS, R.EXISTS]
    assert await create_transfers(db, [tr(chart.purse, chart.operator, 1, flags=LINKED)]) == [
        R.LINKED_EVENT_CHAIN_OPEN
    ]
    await assert_clean(db)


async def test_ledger_rows_are_immutable(db: Any, chart: Chart) -> None:
    await fund(db, chart)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await db.execute("UPDATE payments.transfers SET amount = 1")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await db.execute("DELETE FROM payments.accounts")


async def test_check_finds_a_tampered_balance(db: Any, chart: Chart) -> None:
    await fund(db, chart)
    await db.execute(
        "UPDATE payments.accounts SET credits_posted = credits_posted + 1 WHERE id = $1", chart.purse
    )
    found = await check_ledger(db)
    assert [d.check for d in found] == ["account-totals", "double-entry"]
    assert str(chart.purse) in found[0].detail


async def test_accounts_are_idempotent(db: Any) -> None:
    a = Account(
        id=uuid.uuid4(), code=AccountCode.EPURSE, flags=int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    )
    assert await create_accounts(db, [a]) == [AccountResult.OK]
    assert await create_accounts(db, [a]) == [AccountResult.EXISTS]
    b = Account(id=a.id, code=AccountCode.FEES)
    assert await create_accounts(db, [b]) == [AccountResult.EXISTS_WITH_DIFFERENT_FIELDS]


async def test_concurrent_batches_on_a_hot_account(database_url: str, chart: Chart) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=4, max_size=4)
    assert pool is not None
    try:
        await create_transfers(pool, [tr(chart.control, chart.purse, 10_000)])
        batches = [
            [tr(chart.control if i % 2 else chart.purse, chart.operator, 1) for i in range(50)]
            for _ in range(8)
        ]
        results = await asyncio.gather(*(create_transfers(pool, b) for b in batches))
        assert all(r == [R.OK] * 50 for r in results)
        assert await balances(pool, chart.operator) == (0, 0, 0, 400)
        await assert_clean(pool)
    finally:
        await pool.close()


async def test_the_batcher_answers_each_request_with_its_own_results(database_url: str, chart: Chart) -> None:
    from payments.ledger.batcher import TransferBatcher

    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2)
    assert pool is not None
    try:
        await create_transfers(pool, [tr(chart.control, chart.purse, 100)])
        batcher = TransferBatcher(pool, lanes=1)
        requests = [[tr(chart.purse, chart.operator, 10)] for _ in range(12)]
        chain = [tr(chart.control, chart.operator, 1, flags=LINKED), tr(chart.operator, chart.control, 2)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in [*requests, chain, requests[0]]))
        await batcher.close()
        assert sorted(a[0] for a in answers[:12]) == [R.EXCEEDS_CREDITS] * 2 + [R.OK] * 10
        assert answers[12] == [R.OK, R.OK]
        assert answers[13] in ([R.EXISTS], [R.ID_ALREADY_FAILED])
        assert await balances(pool, chart.purse) == (0, 100, 0, 100)
        await assert_clean(pool)
    finally:
        await pool.close()
