"""Reissue after loss: the old balance moves after the settlement window, less taps uploaded meanwhile."""

from __future__ import annotations

import datetime as dt
import uuid

from card.applications import HolderDetails
from card.audit import Actor
from card.lifecycle.service import CardService
from card.lifecycle.settlement import run_balance_transfers
from payments.ledger import Account, AccountCode, create_accounts
from payments.posting import (
    LoadPosting,
    PurchasePosting,
    epurse_account_id,
    open_operator,
    post_loads,
    post_purchases,
)

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


async def test_balance_moves_after_the_window_less_offline_taps(
    service: CardService, holder: HolderDetails, citizen: Actor
) -> None:
    pool = service.pool
    card = await service.issue(holder, citizen, now=NOW)
    source = uuid.uuid4()
    await create_accounts(pool, [Account(id=source, code=AccountCode.CONTROL)])
    await open_operator(pool, "bus-1")
    (loaded,) = await post_loads(
        pool,
        [
            LoadPosting(
                card_id=str(card.id), counter=1, amount=10_000, source_account_id=source, occurred_at=NOW
            )
        ],
    )
    assert loaded.ok
    loaded_purse = (await service.view(card.id)).epurse
    assert loaded_purse is not None and loaded_purse.balance == 10_000

    await service.report_loss(card.id, citizen, now=NOW)
    new = await service.reissue(card.id, citizen, now=NOW + dt.timedelta(hours=1))
    assert new.epurse is not None and new.epurse.balance == 0
    # A tap made offline before the loss report arrives from a bus two days later.
    (tap,) = await post_purchases(
        pool,
        [PurchasePosting(card_id=str(card.id), counter=1, amount=300, operator="bus-1", occurred_at=NOW)],
    )
    assert tap.ok

    window = dt.timedelta(days=service.settings.settlement_window_days)
    assert await run_balance_transfers(pool, service.ledger, now=NOW + window) == []  # not due yet
    (settled,) = await run_balance_transfers(pool, service.ledger, now=NOW + window + dt.timedelta(hours=2))
    assert settled.amount == 9_700
    new_purse = (await service.view(new.id)).epurse
    assert new_purse is not None and new_purse.balance == 9_700
    old = await service.view(card.id)
    assert old.status == "closed"
    assert old.balance_transfer == "done"
    assert old.epurse is not None and old.epurse.balance == 0
    assert [e.action for e in await service.history(card.id)][-1] == "settle"
    assert await run_balance_transfers(pool, service.ledger, now=NOW + 2 * window) == []  # once only
    async with pool.acquire() as connection:
        account = await connection.fetchval(
            "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", card.id
        )
    assert account == epurse_account_id(str(card.id))  # the id the terminal gateway posts to
