"""Large batches (``SERIAL_BATCH_MIN`` transfers or more): the single writer, and plain batches
written ahead (``payments.ledger.ahead``) or, when their totals do not fit, rule by rule."""

from __future__ import annotations

import uuid
from typing import Any

from payments.ledger import (
    AMOUNT_MAX,
    Account,
    AccountCode,
    AccountFlags,
    AccountResult,
    create_accounts,
    create_transfers,
    lookup_transfers,
)
from payments.ledger import TransferResult as R
from payments.ledger.store import SERIAL_BATCH_MIN
from tests.payments.conftest import T0, Chart
from tests.payments.test_ledger import assert_clean, balances, fund, tr


async def test_a_large_batch_runs_as_the_single_writer_with_the_same_rules(db: Any, chart: Chart) -> None:
    await fund(db, chart, 1000)
    batch = [tr(chart.purse, chart.operator, 7) for _ in range(SERIAL_BATCH_MIN + 44)]
    results = await create_transfers(db, [*batch, batch[0]])
    assert results == [R.OK] * 142 + [R.EXCEEDS_CREDITS] * (len(batch) - 142) + [R.EXISTS]
    assert await balances(db, chart.purse) == (0, 994, 0, 1000)
    await assert_clean(db)


async def test_a_large_batch_of_plain_transfers_stores_every_field_as_given(db: Any, chart: Chart) -> None:
    # Such a batch is written from COPY data encoded before the lock; what is stored must be
    # exactly the rows the rules produce (read back and compared field by field).
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
    assert await create_transfers(db, [tr(chart.control, chart.operator, AMOUNT_MAX - 100)]) == [R.OK]
    batch = [tr(chart.control, chart.operator, 1) for _ in range(SERIAL_BATCH_MIN)]
    assert await create_transfers(db, batch) == [R.OK] * 100 + [R.OVERFLOW] * (len(batch) - 100)
    assert await balances(db, chart.operator) == (0, 0, 0, AMOUNT_MAX)
    await assert_clean(db)


async def test_a_large_batch_to_a_closed_or_other_ledger_account_moves_nothing(db: Any, chart: Chart) -> None:
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
