"""Daily reconciliation of top-ups and their refunds against each channel's statement (reference
§4.4, T+1).

For a business day (China time) and a channel, four buckets: matched; channel-only (长款: the
channel shows money moving that our records do not); platform-only (短款: our records show money
moving that the channel does not list); amount mismatches. Every item that is not matched opens a
suspense item (one per day, channel, order number and refund number: the item's *line*), and
nothing is ever corrected silently: the ledger is not touched here, people resolve suspense items.
A re-run adds nothing for a line whose item is still open, or was resolved for the same difference
(kind, our amount, the channel's); when the line's item was resolved and the re-run (a re-issued
statement) finds a different difference there, it opens a new item that ``supersedes`` the resolved
one: what was decided about the old figures does not close the new ones.
Each run is audited (who ran it, the counts, how many suspense items it opened) in the transaction
that stores it.

**Payments.** Ours: every order paid through the channel that day (``paid_at``); theirs: the
statement's payment lines, by order number.

**Refunds** (by refund number, which the channels list as the refund line's trade number). Ours:
the refunds of the channel's orders that we asked for that day (``created_at``: the channel dates
its refund from our request, while our outcome may be settled later when its answer was lost), and
any refund the statement names whatever its day. A refund the channel lists is matched only when
ours *succeeded* for the same amount and no other day's statement was matched against it
(``payments.matched_refunds``: the first day to match a refund claims it; listed again on another
day, the channel paid it back twice, which is channel-only); when ours failed, is missing, or is
still open (requested, or any other state that is not final) it is channel-only: by T+1 an outcome
we still do not know while the channel has paid the money back is for a person to look at, and
``platform_state`` says which.
A succeeded refund of the day that the channel does not list is platform-only. One of ours
still open that the channel does not list is pending (counted, not a mismatch: neither side has
moved money yet); a failed one it does not list agrees with the channel and is not counted.
A refund asked for just before midnight that the channel dates the next day shows as
platform-only on the first day and matched on the second, as payments do; the second day's
reconciliation keeps such refund numbers (``refunds_matched_late``), the evidence that closes the
first day's item as a timing difference (``payments.clearing.suspense``).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import msgspec

from payments._db import Pool
from payments.channels import ChannelConnector, StatementEntry
from payments.clearing.audit import CLEARING, Actor, audit_txn

__all__ = ["Item", "Reconciliation", "business_date_of", "business_day_start", "reconcile_channel"]

_CHINA = dt.timezone(dt.timedelta(hours=8))  # China time: no daylight saving (Asia/Shanghai)


def business_day_start(day: dt.date) -> dt.datetime:
    """When business day ``day`` starts: midnight, China time."""
    return dt.datetime.combine(day, dt.time(), _CHINA)


def business_date_of(moment: dt.datetime) -> dt.date:
    """The business day ``moment`` (aware) falls in."""
    return moment.astimezone(_CHINA).date()


_FINAL_REFUND_STATES = ("succeeded", "failed")


class Item(msgspec.Struct, frozen=True, kw_only=True):
    order_no: str
    kind: str  # channel_only, platform_only, amount_mismatch
    platform_amount: int | None
    channel_amount: int | None
    refund_no: str | None = None  # set when the item is about a refund of the order
    platform_state: str | None = None  # our refund's state then (refund items only; None: no refund)


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    business_date: dt.date
    channel: str
    matched: int  # payments
    items: list[Item]
    refunds_matched: int = 0
    refunds_pending: int = 0  # ours without an outcome yet, which the channel does not list
    refunds_matched_late: tuple[str, ...] = ()  # matched, though we asked for them on an earlier day

    def count(self, kind: str) -> int:
        return sum(1 for i in self.items if i.kind == kind)


def _payment_items(ours: dict[str, int], theirs: dict[str, int]) -> tuple[int, list[Item]]:
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
    return matched, items


async def _refund_items(
    pool: Pool, channel: str, day: dt.date, statement: list[StatementEntry]
) -> tuple[list[str], int, list[Item], list[str]]:
    """(matched, pending, items, matched late) of the day's refunds; see the module docstring."""
    start = business_day_start(day)
    theirs: dict[str, tuple[str, int]] = {}
    for entry in statement:
        if entry.kind == "refund":
            _, amount = theirs.get(entry.trade_no, (entry.order_no, 0))
            theirs[entry.trade_no] = (entry.order_no, amount + entry.amount)
    rows = await pool.fetch(
        "SELECT r.refund_no, r.amount, r.state, o.order_no, "
        "r.created_at >= $2 AND r.created_at < $3 AS of_day "
        "FROM payments.refunds r JOIN payments.topup_orders o ON o.id = r.order_id "
        "WHERE o.channel = $1 AND r.id IN (SELECT id FROM payments.refunds WHERE created_at >= $2 "
        "AND created_at < $3 UNION SELECT id FROM payments.refunds WHERE refund_no = ANY($4::text[]))",
        channel,
        start,
        start + dt.timedelta(days=1),
        list(theirs),
    )
    ours = {r["refund_no"]: r for r in rows}
    claimed = {  # refunds another day's reconciliation already matched (0023_matched_refunds.sql)
        r["refund_no"]: r["business_date"]
        for r in await pool.fetch(
            "SELECT refund_no, business_date FROM payments.matched_refunds "
            "WHERE channel = $1 AND refund_no = ANY($2::text[]) AND business_date <> $3",
            channel,
            list(theirs),
            day,
        )
    }
    matched: list[str] = []
    pending = 0
    items: list[Item] = []
    late: list[str] = []
    for refund_no in sorted(theirs.keys() | {r["refund_no"] for r in rows if r["of_day"]}):
        mine = ours.get(refund_no)
        state = None if mine is None else str(mine["state"])
        if refund_no not in theirs:
            assert mine is not None
            if state == "succeeded":
                items.append(
                    Item(
                        order_no=mine["order_no"], kind="platform_only", platform_amount=int(mine["amount"]),
                        channel_amount=None, refund_no=refund_no, platform_state=state,
                    )
                )  # fmt: skip
            elif state not in _FINAL_REFUND_STATES:
                pending += 1
            continue
        order_no, their = theirs[refund_no]
        if (
            mine is not None
            and state == "succeeded"
            and int(mine["amount"]) == their
            and refund_no not in claimed
        ):
            matched.append(refund_no)
            if not mine["of_day"]:
                late.append(refund_no)
        elif mine is not None and state == "succeeded" and int(mine["amount"]) != their:
            items.append(
                Item(
                    order_no=mine["order_no"], kind="amount_mismatch", platform_amount=int(mine["amount"]),
                    channel_amount=their, refund_no=refund_no, platform_state=state,
                )
            )  # fmt: skip
        else:  # the channel paid it back; our books show no refund (failed, open or none at all),
            # or the one we have was already matched against another day's statement
            items.append(
                Item(
                    order_no=order_no if mine is None else mine["order_no"], kind="channel_only",
                    platform_amount=None, channel_amount=their, refund_no=refund_no, platform_state=state,
                )
            )  # fmt: skip
    return matched, pending, items, late


async def reconcile_channel(
    pool: Pool, connector: ChannelConnector, day: dt.date, *, actor: Actor = CLEARING
) -> Reconciliation:
    statement = await connector.statement(day)  # no connection held across the call
    theirs: dict[str, int] = {}
    for entry in statement:
        if entry.kind == "payment":
            theirs[entry.order_no] = theirs.get(entry.order_no, 0) + entry.amount
    start = business_day_start(day)
    rows = await pool.fetch(
        "SELECT order_no, amount FROM payments.topup_orders "
        "WHERE channel = $1 AND paid_at >= $2 AND paid_at < $3",
        connector.name,
        start,
        start + dt.timedelta(days=1),
    )
    matched, items = _payment_items({r["order_no"]: int(r["amount"]) for r in rows}, theirs)
    refunds_matched, refunds_pending, refund_items, late = await _refund_items(
        pool, connector.name, day, statement
    )
    result = Reconciliation(
        business_date=day,
        channel=connector.name,
        matched=matched,
        items=items + refund_items,
        refunds_matched=len(refunds_matched),
        refunds_pending=refunds_pending,
        refunds_matched_late=tuple(late),
    )
    await _store(pool, result, actor, refunds_matched)
    return result


# A line's item, unless the line's latest item (the one no other supersedes) is open, or resolved
# with the same difference; superseding that latest one when it was resolved. ON CONFLICT DO NOTHING:
# two runs at once open it once (the open line key, the first line key, the unique supersedes).
_OPEN_ITEM = """
WITH latest AS (
    SELECT s.id, s.state, s.kind, s.platform_amount, s.channel_amount FROM payments.suspense_items s
    WHERE s.business_date = $2 AND s.channel = $3 AND s.order_no = $4
      AND s.refund_no IS NOT DISTINCT FROM $8::text
      AND NOT EXISTS (SELECT 1 FROM payments.suspense_items n WHERE n.supersedes = s.id)
    ORDER BY s.created_at DESC, s.id LIMIT 1
)
INSERT INTO payments.suspense_items (id, business_date, channel, order_no, kind, platform_amount,
    channel_amount, refund_no, platform_state, supersedes)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, (SELECT id FROM latest)
WHERE NOT EXISTS (
    SELECT 1 FROM latest WHERE state = 'open'
    OR (kind, platform_amount, channel_amount) IS NOT DISTINCT FROM ($5::text, $6::bigint, $7::bigint)
)
ON CONFLICT DO NOTHING RETURNING true
"""


async def _store(pool: Pool, result: Reconciliation, actor: Actor, refunds_matched: list[str]) -> None:
    counts = {k: result.count(k) for k in ("channel_only", "platform_only", "amount_mismatch")}
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO payments.reconciliations (business_date, channel, matched, channel_only, "
            "platform_only, mismatched, report, refunds_matched, refunds_pending, refunds_matched_late) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10) "
            "ON CONFLICT (business_date, channel) DO UPDATE SET matched = EXCLUDED.matched, "
            "channel_only = EXCLUDED.channel_only, platform_only = EXCLUDED.platform_only, "
            "mismatched = EXCLUDED.mismatched, report = EXCLUDED.report, "
            "refunds_matched = EXCLUDED.refunds_matched, refunds_pending = EXCLUDED.refunds_pending, "
            "refunds_matched_late = EXCLUDED.refunds_matched_late",
            result.business_date,
            result.channel,
            result.matched,
            counts["channel_only"],
            counts["platform_only"],
            counts["amount_mismatch"],
            json.dumps([msgspec.to_builtins(i) for i in result.items]),
            result.refunds_matched,
            result.refunds_pending,
            list(result.refunds_matched_late),
        )
        # The day claims the refunds it matched; one claimed meanwhile by a run of another day
        # keeps that claim (the next run of this day sees it as listed twice).
        await connection.execute(
            "INSERT INTO payments.matched_refunds (channel, refund_no, business_date) "
            "SELECT $1, unnest($2::text[]), $3 ON CONFLICT (channel, refund_no) DO NOTHING",
            result.channel,
            refunds_matched,
            result.business_date,
        )
        opened = 0  # new suspense items: a re-run finds its items already there
        for i in result.items:
            inserted = await connection.fetchval(
                _OPEN_ITEM,
                uuid.uuid4(), result.business_date, result.channel, i.order_no, i.kind,
                i.platform_amount, i.channel_amount, i.refund_no, i.platform_state,
            )  # fmt: skip
            opened += inserted is not None
        await audit_txn(
            connection,
            actor,
            "reconciliation.run",
            ("reconciliation", f"{result.channel}:{result.business_date.isoformat()}"),
            {
                "channel": result.channel,
                "business_date": result.business_date.isoformat(),
                "matched": result.matched,
                "refunds_matched": result.refunds_matched,
                "refunds_pending": result.refunds_pending,
                **counts,
                "suspense_opened": opened,
            },
        )
