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
    lookup_transfers,
)
from payments.ledger import TransferResult as R
from payments.ledger.check import check_ledger
from tests.payments.conftest import Chart

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING_TRANSFER)
VOID = int(TransferFlags.VOID_PENDING_TRANSFER)
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


async def test_a_large_batch_runs_as_the_single_writer_with_the_same_rules(db: Any, chart: Chart) -> None:
    from payments.ledger.store import SERIAL_BATCH_MIN

    await fund(db, chart, 1000)
    batch = [tr(chart.purse, chart.operator, 7) for _ in range(SERIAL_BATCH_MIN + 44)]
    results = await create_transfers(db, [*batch, batch[0]])
    assert results == [R.OK] * 142 + [R.EXCEEDS_CREDITS] * (len(batch) - 142) + [R.EXISTS]
    assert await balances(db, chart.purse) == (0, 994, 0, 1000)
    await assert_clean(db)


async def test_a_large_batch_of_plain_transfers_stores_every_field_as_given(db: Any, chart: Chart) -> None:
    # Such a batch is written from COPY data encoded before the lock; what is stored must be
    # exactly the rows the rules produce (read back and compared field by field).
    from payments.ledger.store import SERIAL_BATCH_MIN

    extras: list[dict[str, Any]] = [
        {},
        {"user_data_128": uuid.uuid4(), "user_data_64": 2**63 - 1, "user_data_32": -(2**31)},
        {"reference": "tap:公交7路:0001", "code": 32_767},
        {"user_data_32": 7, "reference": ""},
    ]
    batch = [
        tr(chart.control, chart.operator, 1 + i, **extras[i % len(extras)]) for i in range(SERIAL_BATCH_MIN)
    ]
    assert await create_transfers(db, batch, now=T0) == [R.OK] * len(batch)
    stored = await lookup_transfers(db, [t.id for t in batch])
    for t in batch:
        assert stored[t.id] == (
            t.id, t.debit_account_id, t.credit_account_id, t.amount, None, t.ledger, t.code, 0, 0,
            t.user_data_128, t.user_data_64, t.user_data_32, t.reference, T0,
        )  # fmt: skip
    assert await create_transfers(db, batch, now=T0) == [R.EXISTS] * len(batch)  # the same fields
    assert await balances(db, chart.operator) == (0, 0, 0, sum(t.amount or 0 for t in batch))
    await assert_clean(db)


async def test_a_failed_id_stays_failed_in_a_large_batch(db: Any, chart: Chart) -> None:
    from payments.ledger.store import SERIAL_BATCH_MIN

    refused = tr(chart.purse, chart.operator, 5)  # the purse holds nothing yet
    assert await create_transfers(db, [refused]) == [R.EXCEEDS_CREDITS]
    await fund(db, chart, 1000)
    batch = [tr(chart.control, chart.operator, 1) for _ in range(SERIAL_BATCH_MIN)]
    results = await create_transfers(db, [*batch, refused])
    assert results == [R.OK] * len(batch) + [R.ID_ALREADY_FAILED]
    assert refused.id not in await lookup_transfers(db, [refused.id])
    assert await balances(db, chart.purse) == (0, 0, 0, 1000)
    await assert_clean(db)


async def test_a_large_batch_keeps_credits_within_debits(db: Any, chart: Chart) -> None:
    # An account whose credits may not exceed its debits, credited by large batches (written
    # ahead when the whole total fits, transfer by transfer when it does not).
    from payments.ledger.store import SERIAL_BATCH_MIN

    capped = uuid.uuid4()
    flags = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
    assert await create_accounts(db, [Account(id=capped, code=AccountCode.FEES, flags=flags)]) == [
        AccountResult.OK
    ]
    assert await create_transfers(db, [tr(capped, chart.control, 1000)]) == [R.OK]
    fits = [tr(chart.control, capped, 3) for _ in range(SERIAL_BATCH_MIN)]
    assert await create_transfers(db, fits) == [R.OK] * len(fits)
    too_much = [tr(chart.control, capped, 1) for _ in range(SERIAL_BATCH_MIN)]
    results = await create_transfers(db, too_much)
    assert results == [R.OK] * (1000 - 768) + [R.EXCEEDS_DEBITS] * (len(too_much) - (1000 - 768))
    assert await balances(db, capped) == (0, 1000, 0, 1000)
    await assert_clean(db)


async def test_a_large_batch_stops_at_the_overflow(db: Any, chart: Chart) -> None:
    from payments.ledger import AMOUNT_MAX
    from payments.ledger.store import SERIAL_BATCH_MIN

    assert await create_transfers(db, [tr(chart.control, chart.operator, AMOUNT_MAX - 100)]) == [R.OK]
    batch = [tr(chart.control, chart.operator, 1) for _ in range(SERIAL_BATCH_MIN)]
    assert await create_transfers(db, batch) == [R.OK] * 100 + [R.OVERFLOW] * (len(batch) - 100)
    assert await balances(db, chart.operator) == (0, 0, 0, AMOUNT_MAX)
    await assert_clean(db)


async def test_a_large_batch_to_a_closed_or_other_ledger_account_moves_nothing(db: Any, chart: Chart) -> None:
    from payments.ledger.store import SERIAL_BATCH_MIN

    closed, dollars = uuid.uuid4(), uuid.uuid4()
    made = await create_accounts(
        db,
        [
            Account(id=closed, code=AccountCode.OPERATOR_PAYABLE, flags=int(AccountFlags.CLOSED)),
            Account(id=dollars, code=AccountCode.OPERATOR_PAYABLE, ledger=840),
        ],
    )
    assert made == [AccountResult.OK] * 2
    for target, refused in (
        (closed, R.CREDIT_ACCOUNT_CLOSED),
        (dollars, R.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
    ):
        batch = [tr(chart.control, chart.operator, 1) for _ in range(SERIAL_BATCH_MIN - 1)]
        results = await create_transfers(db, [*batch, tr(chart.control, target, 1)])
        assert results == [R.OK] * len(batch) + [refused]
    assert await balances(db, closed) == await balances(db, dollars) == (0, 0, 0, 0)
    await assert_clean(db)


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
