"""The demo citizen's day with payments (idempotent per service day; called by ``payments.demo``).

1. Top-ups: 50 yuan through each channel, over the real HTTP path to the channel simulators
   (create and pay through the connector, the customer pays through the simulator's control,
   then the channel is queried and the order credited). When no channel is configured or a
   simulator does not answer, that part is skipped with a line saying so.
2. Rides: stored-value taps on the metro beyond its daily cap (debited at full fare, the excess
   rebated at settlement) and QR rides on the bus charged through the caps until a ride costs
   nothing, posted through the card domain's posting interface.
3. The settlement of the day (``payments.clearing.settlement``), then ``check_ledger``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

from payments._db import Pool
from payments.channels import ChannelError, build_connectors
from payments.channels.config import channel_configs
from payments.clearing.settlement import SettlementChanged, SettlementRefused, settle
from payments.cli import yuan
from payments.fares import Caps, FareTable, LineFare, Ride, publish_fare_table, service_day
from payments.fares.qr import charge_qr_ride_txn
from payments.ledger import lookup_balances, lookup_transfers
from payments.ledger.check import check_ledger
from payments.posting import (
    PurchasePosting,
    open_operator,
    operator_account_id,
    post_purchases,
    transaction_key,
)
from payments.topup.models import CreateTopup
from payments.topup.service import Actor, TopupService

__all__ = ["DEMO_TOPUP", "demo_day"]

DEMO_TOPUP = 5000  # fen per channel
METRO = FareTable(
    operator="metro",
    default_fare=300,
    lines=(LineFare(line="M1", kind="distance", base_fare=200, per_stop_fare=50, max_fare=600),),
    caps=Caps(daily=1200, weekly=6000),
)
BUS = FareTable(
    operator="bus",
    default_fare=200,
    lines=(LineFare(line="B7", base_fare=200),),
    caps=Caps(daily=600, weekly=3000),
)
_SINCE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_ACTOR = Actor(kind="system", id="demo")


async def _topups(pool: Pool, settings: Any, keyring: Any, person_id: uuid.UUID) -> tuple[list[str], int]:
    configs = channel_configs(settings.integrations, keyring.get("simulator"))
    if not configs:
        return ["top-ups skipped: no payment channel simulator is running (`citizen serve` starts them)"], 0
    lines, credited = [], 0
    today = dt.datetime.now(dt.UTC) - dt.timedelta(hours=12)
    async with httpx.AsyncClient() as client:
        connectors = build_connectors(configs, client)
        service = TopupService(pool, settings.payments, connectors, settings.public_url)
        for name, connector in connectors.items():
            done = await pool.fetchval(
                "SELECT count(*) FROM payments.topup_orders WHERE person_id = $1 AND channel = $2 "
                "AND state = 'credited' AND amount = $3 AND created_at > $4",
                person_id,
                name,
                DEMO_TOPUP,
                today,
            )
            if done:
                lines.append(f"top-up {name}: {yuan(DEMO_TOPUP)} yuan already credited today")
                credited += DEMO_TOPUP
                continue
            try:
                order = await service.create(person_id, CreateTopup(amount=DEMO_TOPUP), _ACTOR)
                await service.pay(None, order.id, name, _ACTOR)
                paid = await client.post(
                    f"{connector.config.base_url}/_control/pay/{order.order_no}", json={"fail": False}
                )
                paid.raise_for_status()
                view = await service.refresh(order.id)
            except (ChannelError, httpx.HTTPError) as exc:
                lines.append(f"top-up {name} skipped: the simulator did not answer ({type(exc).__name__})")
                continue
            lines.append(f"top-up {name}: {yuan(DEMO_TOPUP)} yuan, order {view.order_no} {view.state}")
            credited += DEMO_TOPUP if view.state == "credited" else 0
    return lines, credited


async def _rides(pool: Pool, card_id: uuid.UUID, epurse: uuid.UUID, day: dt.date) -> list[str]:
    base = 1_000_000 + (day.toordinal() % 10_000) * 100  # never a real card counter (u16)
    card = str(card_id)
    if await lookup_transfers(pool, [transaction_key(card, base, "purchase")]):
        return ["rides of today already made"]
    await publish_fare_table(pool, METRO, effective_from=_SINCE)
    await publish_fare_table(pool, BUS, effective_from=_SINCE)
    for operator in ("metro", "bus"):
        await open_operator(pool, operator)
    balance = (await lookup_balances(pool, [epurse]))[epurse].available
    now = dt.datetime.now(dt.UTC)
    taps = [
        PurchasePosting(
            card_id=card,
            counter=base + n,
            amount=400,
            operator="metro",
            occurred_at=now - dt.timedelta(minutes=50 - n),
            terminal_id="DEMO-GATE-1",
            epurse_account_id=epurse,
        )
        for n in range(5)  # 5 x 4.00 = 20.00 against a daily cap of 12.00
    ]
    if balance < sum(t.amount for t in taps) + 2000:
        return [f"rides skipped: the e-purse holds {yuan(balance)} yuan (the top-ups fund them)"]
    posted = [r.ok for r in await post_purchases(pool, taps)]
    qr_charged, qr_rides = [], 0
    for n in range(10):
        ride = Ride(at=now - dt.timedelta(minutes=20 - n), line="B7")
        async with pool.acquire() as connection, connection.transaction():
            charge = await charge_qr_ride_txn(connection, card_id=card, operator="bus", ride=ride)
            qr_rides += 1
            if charge.charged:
                [result] = await post_purchases(
                    connection,
                    [
                        PurchasePosting(
                            card_id=card,
                            counter=base + 50 + n,
                            amount=charge.charged,
                            operator="bus",
                            occurred_at=ride.at,
                            terminal_id="DEMO-BUS-7",
                            epurse_account_id=epurse,
                        )
                    ],
                )
                posted.append(result.ok)
                qr_charged.append(charge.charged)
        if not charge.charged:
            break  # capped: this ride and every further one today is free
    return [
        f"rides: {len(taps)} metro taps at {yuan(400)} (daily cap {yuan(METRO.caps.daily)}), "
        f"{qr_rides} bus QR rides charged {' + '.join(yuan(c) for c in qr_charged)} then capped at "
        f"{yuan(BUS.caps.daily)}; {sum(posted)} purchases posted"
    ]


async def demo_day(
    pool: Pool, settings: Any, keyring: Any, person_id: uuid.UUID, card_id: uuid.UUID
) -> list[str]:
    epurse = await pool.fetchval("SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", card_id)
    if epurse is None:
        return ["skipped: the demo card has no e-purse"]
    lines, credited = await _topups(pool, settings, keyring, person_id)
    day = service_day(dt.datetime.now(dt.UTC))
    lines += await _rides(pool, card_id, epurse, day)
    try:
        report = await settle(pool, day, key=keyring.get("settlement"), fee_bps=settings.payments.fee_bps)
    except (SettlementRefused, SettlementChanged) as exc:
        lines.append(f"settlement of {day} skipped: {exc}")
        report = None
    exact = True
    paid = []
    for op in report.operators if report else []:
        # paid exactly the fares taken: what the operator's payable received in the window, less
        # rebates and fees, went to the bank, and the payable holds nothing of the window any more
        payable = await lookup_balances(pool, [operator_account_id(op.operator)])
        exact &= op.net + op.fees + op.rebates == op.gross
        exact &= payable[operator_account_id(op.operator)].credit_balance == 0
        paid.append(
            f"{op.operator} {op.taps} taps gross {yuan(op.gross)} - rebates {yuan(op.rebates)} - fees "
            f"{yuan(op.fees)} = {yuan(op.net)}"
        )
    if report is not None:
        lines.append(f"settlement {day}: " + ("; ".join(paid) or "nothing to settle"))
    problems = await check_ledger(pool)
    balance = (await lookup_balances(pool, [epurse]))[epurse].credit_balance
    lines.append(
        f"summary: topped up {yuan(credited)} yuan, e-purse {yuan(balance)} yuan, "
        + (
            f"{len(paid)} operator(s) paid exactly the fares taken"
            if report and exact
            else "settlement not run or not exact"
        )
        + f", ledger check {'passed' if not problems else f'FAILED ({len(problems)} problems)'}"
    )
    return lines
