"""Clearing and settlement: each operator paid exactly the fares taken, re-runs move nothing,
late taps, cap rebates, terminal totals, signed files."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from payments.clearing.files import SettlementFileInvalid, verify_file
from payments.clearing.settlement import (
    SettlementChanged,
    SettlementRefused,
    cut_off,
    settle,
    settlement_ids,
)
from payments.demo import ensure_platform_accounts, platform_account_id
from payments.fares import Caps, FareTable, publish_fare_table, service_day
from payments.ledger import Account, AccountCode, Transfer, create_accounts, create_transfers, lookup_balances
from payments.ledger.check import check_ledger
from payments.posting import (
    PurchasePosting,
    epurse_account_id,
    open_epurse,
    open_operator,
    operator_account_id,
    post_purchases,
)

KEY = bytes(range(32))
FEE_BPS = 50


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert created is not None
    await ensure_platform_accounts(created)
    yield created
    await created.close()


async def fund(pool: Any, cards: list[str], amount: int = 100_000) -> None:
    control = platform_account_id("control")
    for card in cards:
        await open_epurse(pool, card)
    await create_transfers(
        pool,
        [
            Transfer(
                id=uuid.uuid4(),
                debit_account_id=control,
                credit_account_id=epurse_account_id(c),
                amount=amount,
            )
            for c in cards
        ],
    )


class Taps:
    """Taps posted through the card domain's posting interface, counters per card."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.counters: dict[str, int] = {}
        self.posted: dict[str, int] = {}

    async def tap(self, card: str, operator: str, amount: int, at: dt.datetime, terminal: str = "T1") -> None:
        counter = self.counters.get(card, 0) + 1
        self.counters[card] = counter
        [result] = await post_purchases(
            self.pool,
            [
                PurchasePosting(
                    card_id=card,
                    counter=counter,
                    amount=amount,
                    operator=operator,
                    occurred_at=at,
                    terminal_id=terminal,
                )
            ],
        )
        assert result.ok, result
        self.posted[operator] = self.posted.get(operator, 0) + amount


def today() -> dt.date:
    return service_day(dt.datetime.now(dt.UTC))


async def credit_balance(pool: Any, account: uuid.UUID) -> int:
    return (await lookup_balances(pool, [account]))[account].credit_balance


async def transfer_count(pool: Any) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM payments.transfers"))


async def test_each_operator_is_paid_exactly_the_fares_taken_and_a_rerun_moves_nothing(pool: Any) -> None:
    cards = [f"31010000000000{n:02d}" for n in range(6)]
    await fund(pool, cards)
    for operator in ("metro", "bus-7"):
        await open_operator(pool, operator)
    taps = Taps(pool)
    now = dt.datetime.now(dt.UTC)
    for n, card in enumerate(cards):
        await taps.tap(card, "metro", 300 + n, now, terminal="G-01")
        await taps.tap(card, "bus-7", 200, now, terminal=f"B-{n % 2}")
        await taps.tap(card, "metro", 450, now, terminal="G-02")
    day = today()
    before = await transfer_count(pool)
    steps: list[tuple[int, int, str]] = []
    report = await settle(pool, day, key=KEY, fee_bps=FEE_BPS, progress=lambda *s: steps.append(s))
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    assert not report.rerun
    by_operator = {o.operator: o for o in report.operators}
    assert set(by_operator) == {"metro", "bus-7"}
    for operator, settled in by_operator.items():
        fee = taps.posted[operator] * FEE_BPS // 10_000
        assert settled.gross == taps.posted[operator]
        assert settled.fees == fee
        assert settled.net == taps.posted[operator] - fee  # exactly the fares taken, less the fee
        assert settled.taps == 12 if operator == "metro" else 6
        assert settled.late_taps == 0 and settled.rebates == 0
        # the operator's payable is empty: everything it took went to the bank and the fee
        assert await credit_balance(pool, operator_account_id(operator)) == 0
        _, settlement_id = settlement_ids(operator, day)
        assert settled.transfer_id == settlement_id
        totals = verify_file(settled.file, KEY)
        assert (totals.taps, totals.gross, totals.fees, totals.net) == (
            settled.taps,
            settled.gross,
            fee,
            settled.net,
        )
        assert totals.transfer_id == str(settlement_id)
    assert await credit_balance(pool, platform_account_id("settlement")) == sum(
        o.net for o in report.operators
    )
    assert await credit_balance(pool, platform_account_id("fees")) == sum(o.fees for o in report.operators)
    assert report.created == 4  # a fee and a settlement per operator
    assert await transfer_count(pool) == before + 4
    assert await check_ledger(pool) == []

    again = await settle(pool, day, key=KEY, fee_bps=FEE_BPS)
    assert again.rerun and again.created == 0
    assert (again.window_from, again.window_to) == (report.window_from, report.window_to)
    assert [o.file for o in again.operators] == [o.file for o in report.operators]
    assert await transfer_count(pool) == before + 4
    assert await pool.fetchval("SELECT count(*) FROM payments.settlements WHERE business_date = $1", day) == 2
    assert await check_ledger(pool) == []


async def test_late_taps_go_to_the_next_run_and_days_settle_in_order(pool: Any) -> None:
    await fund(pool, ["c1"])
    await open_operator(pool, "metro")
    taps = Taps(pool)
    now = dt.datetime.now(dt.UTC)
    day = today()
    await taps.tap("c1", "metro", 300, now)
    first = await settle(pool, day, key=KEY, fee_bps=FEE_BPS)
    assert first.operators[0].taps == 1
    with pytest.raises(SettlementRefused, match="has not begun"):
        await settle(pool, day + dt.timedelta(days=1), key=KEY, fee_bps=FEE_BPS)
    # uploaded after day's run closed, tapped on that day: late, in the next day's run
    await taps.tap("c1", "metro", 400, now)
    next_day = day + dt.timedelta(days=1)
    second = await settle(pool, next_day, key=KEY, fee_bps=FEE_BPS, now=cut_off(day) + dt.timedelta(hours=1))
    [metro] = second.operators
    assert (metro.taps, metro.late_taps, metro.gross) == (1, 1, 400)
    assert second.window_from == first.window_to
    with pytest.raises(SettlementRefused, match="in order"):
        await settle(pool, day - dt.timedelta(days=1), key=KEY, fee_bps=FEE_BPS)
    assert (await settle(pool, day, key=KEY, fee_bps=FEE_BPS)).created == 0
    assert await credit_balance(pool, operator_account_id("metro")) == 0
    assert await check_ledger(pool) == []


async def test_a_changed_window_is_refused_and_nothing_moves(pool: Any) -> None:
    await fund(pool, ["c1"])
    await open_operator(pool, "metro")
    taps = Taps(pool)
    await taps.tap("c1", "metro", 300, dt.datetime.now(dt.UTC))
    day = today()
    report = await settle(pool, day, key=KEY, fee_bps=FEE_BPS)
    # a purchase recorded (ledger time) inside the settled window after the run: a straggler
    sneaky = PurchasePosting(
        card_id="c1", counter=99, amount=500, operator="metro", occurred_at=dt.datetime.now(dt.UTC)
    )
    from payments.posting import transaction_key

    await create_transfers(
        pool,
        [
            Transfer(
                id=transaction_key("c1", 99, "purchase"),
                debit_account_id=epurse_account_id("c1"),
                credit_account_id=operator_account_id("metro"),
                amount=sneaky.amount,
                code=1,
            )
        ],
        now=report.window_to - dt.timedelta(seconds=1),
    )
    before = await transfer_count(pool)
    with pytest.raises(SettlementChanged):
        await settle(pool, day, key=KEY, fee_bps=FEE_BPS)
    assert await transfer_count(pool) == before
    assert await check_ledger(pool) == []


async def test_cap_rebates_are_paid_into_the_epurse_and_late_taps_pay_the_difference(pool: Any) -> None:
    await fund(pool, ["c1", "c2"])
    await open_operator(pool, "metro")
    await publish_fare_table(
        pool,
        FareTable(operator="metro", default_fare=300, caps=Caps(daily=1000)),
        effective_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )
    taps = Taps(pool)
    now = dt.datetime.now(dt.UTC)
    day = today()
    for _ in range(5):
        await taps.tap("c1", "metro", 300, now)  # 1500 debited, the cap is 1000
    await taps.tap("c2", "metro", 300, now)  # under the cap
    purse = epurse_account_id("c1")
    before = await credit_balance(pool, purse)
    report = await settle(pool, day, key=KEY, fee_bps=FEE_BPS)
    [metro] = report.operators
    assert (metro.gross, metro.rebates, metro.rebate_transfers) == (1800, 500, 1)
    assert metro.fees == (1800 - 500) * FEE_BPS // 10_000
    assert metro.net == 1800 - 500 - metro.fees
    assert await credit_balance(pool, purse) == before + 500
    assert await credit_balance(pool, operator_account_id("metro")) == 0
    # a late tap of the same day: the day owes 800 now, 500 was paid, the next run pays 300
    await taps.tap("c1", "metro", 300, now)
    second = await settle(
        pool, day + dt.timedelta(days=1), key=KEY, fee_bps=FEE_BPS, now=cut_off(day) + dt.timedelta(hours=1)
    )
    [late] = second.operators
    assert (late.gross, late.late_taps, late.rebates) == (300, 1, 300)
    assert late.net == 0 and late.transfer_id is None and late.fees == 0
    assert await credit_balance(pool, purse) == before + 500 - 300 + 300  # rebate, late tap, rebate
    assert (await settle(pool, day, key=KEY, fee_bps=FEE_BPS)).created == 0
    assert await check_ledger(pool) == []


async def test_terminal_totals_are_compared_and_differences_reported(pool: Any) -> None:
    await fund(pool, ["c1"])
    await open_operator(pool, "bus-7")
    await Taps(pool).tap("c1", "bus-7", 200, dt.datetime.now(dt.UTC), terminal="B-1")
    for terminal, psam in (("B-1", b"\x00\x00\x00\x00\x00\x01"), ("B-2", b"\x00\x00\x00\x00\x00\x02")):
        await pool.execute(
            "INSERT INTO card.terminals (id, operator, kind, status, psam_terminal_no, tmk_wrapped, "
            "tmk_check) VALUES ($1, 'bus-7', 1, 'active', $2, '\\x00', '\\x00')",
            terminal,
            psam,
        )
    await pool.execute(
        "INSERT INTO card.terminal_settlements (terminal_id, batch_from, batch_to, terminal_count, "
        "terminal_amount, host_count, host_amount, matched) VALUES "
        "('B-1', 1, 3, 1, 200, 1, 200, true), ('B-2', 1, 2, 4, 800, 3, 600, false)"
    )
    report = await settle(pool, today(), key=KEY, fee_bps=FEE_BPS)
    [bus] = report.operators
    assert [t.terminal_id for t in bus.terminals] == ["B-1", "B-2"]
    [different] = bus.terminal_differences
    assert (different.terminal_id, different.terminal_count - different.host_count) == ("B-2", 1)
    stored = await pool.fetchval(
        "SELECT terminal_report::text FROM payments.settlements WHERE operator = 'bus-7'"
    )
    assert '"matched": false' in stored and '"terminal_id": "B-2"' in stored


async def test_the_file_is_signed_and_tampering_is_found(pool: Any) -> None:
    await fund(pool, ["c1"])
    await open_operator(pool, "metro")
    await Taps(pool).tap("c1", "metro", 300, dt.datetime.now(dt.UTC))
    [metro] = (await settle(pool, today(), key=KEY, fee_bps=FEE_BPS)).operators
    lines = metro.file.decode().splitlines()
    assert lines[0].startswith("H,CITIZEN-SETTLEMENT,1,metro,")
    assert lines[1].endswith(",T1,1,300")
    assert lines[-1].startswith("T,1,1,300,0,0,0,1,299,") and ",HMAC-SHA256:" in lines[-1]
    with pytest.raises(SettlementFileInvalid, match="signature"):
        verify_file(metro.file.replace(b",1,300\n", b",1,900\n"), KEY)
    with pytest.raises(SettlementFileInvalid, match="signature"):
        verify_file(metro.file, bytes(32))


async def test_an_operator_without_a_payable_account_name_is_not_settled(pool: Any) -> None:
    """Purchases credited to an account that is not an operator's payable are left out."""
    odd = uuid.uuid4()
    await create_accounts(pool, [Account(id=odd, code=AccountCode.FEES)])
    await fund(pool, ["c1"])
    await create_transfers(
        pool,
        [
            Transfer(
                id=uuid.uuid4(),
                debit_account_id=epurse_account_id("c1"),
                credit_account_id=odd,
                amount=5,
                code=1,
            )
        ],
    )
    report = await settle(pool, today(), key=KEY, fee_bps=FEE_BPS)
    assert report.operators == []
