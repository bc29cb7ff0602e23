"""Daily reconciliation of top-ups against each channel's statement (reference §4.4, T+1).

For a business day (China time) and a channel, the platform's side is every order paid through
that channel that day (``paid_at``); the channel's side is its statement's payments. Four buckets:
matched; channel-only (长款: the channel took money we have no paid order for); platform-only
(短款: we credited money the channel does not list); amount mismatches. Every item that is not
matched opens a suspense item (one per day, channel and order number, so a re-run adds nothing);
nothing is ever corrected silently: the ledger is not touched here, people resolve suspense items.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import msgspec

from payments._db import Pool
from payments.channels import ChannelConnector

__all__ = ["Reconciliation", "reconcile_channel"]

_CHINA = dt.timezone(dt.timedelta(hours=8))


class Item(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    kind: str  # channel_only, platform_only, amount_mismatch
    platform_amount: int | None
    channel_amount: int | None


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    business_date: dt.date
    channel: str
    matched: int
    items: list[Item]

    def count(self, kind: str) -> int:
        return sum(1 for i in self.items if i.kind == kind)


async def reconcile_channel(pool: Pool, connector: ChannelConnector, day: dt.date) -> Reconciliation:
    statement = await connector.statement(day)  # no connection held across the call
    theirs: dict[str, int] = {}
    for entry in statement:
        if entry.kind == "payment":
            theirs[entry.order_no] = theirs.get(entry.order_no, 0) + entry.amount
    start = dt.datetime.combine(day, dt.time(), _CHINA)
    rows = await pool.fetch(
        "SELECT order_no, amount FROM payments.topup_orders "
        "WHERE channel = $1 AND paid_at >= $2 AND paid_at < $3",
        connector.name,
        start,
        start + dt.timedelta(days=1),
    )
    ours = {r["order_no"]: int(r["amount"]) for r in rows}
    items: list[Item] = []
    matched = 0
    for order_no in sorted(ours.keys() | theirs.keys()):
        mine, their = ours.get(order_no), theirs.get(order_no)
        if mine == their:
            matched += 1
        elif their is None:
            items.append(
                Item(order_no=order_no, kind="platform_only", platform_amount=mine, channel_amount=None)
            )
        elif mine is None:
            items.append(
                Item(order_no=order_no, kind="channel_only", platform_amount=None, channel_amount=their)
            )
        else:
            items.append(
                Item(order_no=order_no, kind="amount_mismatch", platform_amount=mine, channel_amount=their)
            )
    result = Reconciliation(business_date=day, channel=connector.name, matched=matched, items=items)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO payments.reconciliations (business_date, channel, matched, channel_only, "
            "platform_only, mismatched, report) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) "
            "ON CONFLICT (business_date, channel) DO UPDATE SET matched = EXCLUDED.matched, "
            "channel_only = EXCLUDED.channel_only, platform_only = EXCLUDED.platform_only, "
            "mismatched = EXCLUDED.mismatched, report = EXCLUDED.report",
            day,
            connector.name,
            matched,
            result.count("channel_only"),
            result.count("platform_only"),
            result.count("amount_mismatch"),
            json.dumps([msgspec.to_builtins(i) for i in items]),
        )
        await connection.executemany(
            "INSERT INTO payments.suspense_items (id, business_date, channel, order_no, kind, "
            "platform_amount, channel_amount) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [
                (uuid.uuid4(), day, connector.name, i.order_no, i.kind, i.platform_amount, i.channel_amount)
                for i in items
            ],
        )
    return result
