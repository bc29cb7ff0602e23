"""The posting interface the card domain calls: taps and loads, idempotent per (card, counter)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from payments.ledger import Account, AccountCode, TransferResult, create_accounts, lookup_balances
from payments.ledger.check import check_ledger
from payments.posting import (
    LoadPosting,
    PurchasePosting,
    epurse_account_id,
    open_epurse,
    open_operator,
    operator_account_id,
    post_loads,
    post_purchases,
    transaction_key,
)

AT = dt.datetime(2026, 3, 2, 7, 30, tzinfo=dt.UTC)


async def test_loads_then_taps_and_a_repeated_upload(db: Any) -> None:
    clearing = uuid.uuid4()
    await create_accounts(db, [Account(id=clearing, code=AccountCode.CHANNEL_CLEARING)])
    assert await open_epurse(db, "3101000000000001", overdraft_limit=200) == epurse_account_id(
        "3101000000000001"
    )
    assert await open_epurse(db, "3101000000000001", overdraft_limit=200) == epurse_account_id(
        "3101000000000001"
    )
    await open_operator(db, "metro")
    [load] = await post_loads(
        db,
        [
            LoadPosting(
                card_id="3101000000000001", counter=1, amount=5000, source_account_id=clearing, occurred_at=AT
            )
        ],
    )
    assert load.ok and load.transfer_id == transaction_key("3101000000000001", 1, "load")
    taps = [
        PurchasePosting(card_id="3101000000000001", counter=n, amount=300, operator="metro", occurred_at=AT)
        for n in range(2, 5)
    ]
    assert [r.result for r in await post_purchases(db, taps)] == [TransferResult.OK] * 3
    again = await post_purchases(db, [*taps, taps[0]])
    assert [r.result for r in again] == [TransferResult.EXISTS] * 4
    assert all(r.ok for r in again)
    changed = PurchasePosting(
        card_id="3101000000000001", counter=2, amount=301, operator="metro", occurred_at=AT
    )
    [conflict] = await post_purchases(db, [changed])
    assert conflict.result is TransferResult.EXISTS_WITH_DIFFERENT_FIELDS and not conflict.ok
    balances = await lookup_balances(
        db, [epurse_account_id("3101000000000001"), operator_account_id("metro")]
    )
    assert balances[epurse_account_id("3101000000000001")].credit_balance == 5000 - 900
    assert balances[operator_account_id("metro")].credits_posted == 900
    assert await check_ledger(db) == []


async def test_a_tap_beyond_the_overdraft_limit_moves_nothing(db: Any) -> None:
    await open_epurse(db, "card-2", overdraft_limit=200)
    await open_operator(db, "bus")
    taps = [
        PurchasePosting(card_id="card-2", counter=n, amount=150, operator="bus", occurred_at=AT)
        for n in (1, 2)
    ]
    results = await post_purchases(db, taps)
    assert [r.result for r in results] == [TransferResult.OK, TransferResult.EXCEEDS_CREDITS]
    assert (await lookup_balances(db, [epurse_account_id("card-2")]))[
        epurse_account_id("card-2")
    ].credit_balance == -150


async def test_card_uuid_ids_match_the_card_domains_epurse(db: Any) -> None:
    card_id = uuid.uuid4()
    # card's PaymentsEpurseLedger opens uuid5(card_id, "epurse"); postings by card id agree.
    assert epurse_account_id(str(card_id)) == uuid.uuid5(card_id, "epurse")
    assert await open_epurse(db, str(card_id)) == uuid.uuid5(card_id, "epurse")
