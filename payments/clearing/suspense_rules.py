"""Which resolution closes which suspense item, and the facts the database can check for it.

The table and the reasons are in ``payments.clearing.suspense``'s docstring; this module is the
rule itself, with the errors a resolution is refused with. :func:`check` runs in the resolving
transaction and answers the evidence it found (for the audit entry), or raises ``ResolutionRefused``;
:func:`counterpart_of` finds the item a payment's timing difference pairs with, for the resolver to
lock before :func:`check` looks at it again.

Every claim resting on our records explains one line of a statement: a payment booked before the
line's business day (China midnight, as ``payments.clearing.reconcile`` cuts days) or already
explaining another item, or matched on the day it was booked, is not a late credit of this line; a
refund's success likewise; and a timing difference pairs two open items, once.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING, Final

from payments._db import Connection
from payments.clearing.reconcile import business_date_of, business_day_start
from payments.errors import PaymentsError

if TYPE_CHECKING:
    from payments.clearing.suspense import SuspenseItem

__all__ = [
    "ALLOWED",
    "InvalidResolution",
    "Resolution",
    "ResolutionRefused",
    "SuspenseItemNotFound",
    "SuspenseItemResolved",
    "check",
    "counterpart_of",
]


class Resolution(enum.StrEnum):
    CREDITED_LATE = "credited_late"
    REFUND_SETTLED = "refund_settled"
    TIMING_DIFFERENCE = "timing_difference"
    CHANNEL_REFUNDED = "channel_refunded"
    CHANNEL_CORRECTED = "channel_corrected"
    WRITTEN_OFF = "written_off"


_R = Resolution
# (kind, about a refund) -> the resolutions that may close such an item.
ALLOWED: Final[dict[tuple[str, bool], frozenset[Resolution]]] = {
    ("channel_only", False): frozenset(
        {_R.CREDITED_LATE, _R.TIMING_DIFFERENCE, _R.CHANNEL_REFUNDED, _R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}
    ),
    ("platform_only", False): frozenset({_R.TIMING_DIFFERENCE, _R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}),
    ("amount_mismatch", False): frozenset({_R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}),
    # A refund the channel lists is matched whatever day we asked for it: a channel-only refund is
    # never a timing difference, but ours may have succeeded since (its outcome settled late).
    ("channel_only", True): frozenset({_R.REFUND_SETTLED, _R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}),
    ("platform_only", True): frozenset({_R.TIMING_DIFFERENCE, _R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}),
    ("amount_mismatch", True): frozenset({_R.CHANNEL_CORRECTED, _R.WRITTEN_OFF}),
}
_OPPOSITE: Final = {"channel_only": "platform_only", "platform_only": "channel_only"}


class SuspenseItemNotFound(PaymentsError):
    problem_type = "suspense-item-not-found"
    problem_title = "No such suspense item"
    problem_status = 404


class SuspenseItemResolved(PaymentsError):
    problem_type = "suspense-item-resolved"
    problem_title = "The suspense item is already resolved"
    problem_status = 409


class ResolutionRefused(PaymentsError):
    """The resolution does not fit the item, or the database contradicts the fact it claims."""

    problem_type = "suspense-resolution-refused"
    problem_title = "The suspense item cannot be resolved so"
    problem_status = 409


class InvalidResolution(PaymentsError):
    problem_type = "suspense-resolution-invalid"
    problem_title = "Invalid resolution"
    problem_status = 422


async def check(
    db: Connection, item: SuspenseItem, resolution: Resolution, counterpart: SuspenseItem | None = None
) -> str | None:
    """The evidence for ``resolution`` of ``item`` (None: nothing to check), or ``ResolutionRefused``.

    ``counterpart``: for a payment's timing difference, the opposite item :func:`counterpart_of`
    found, locked since; it must still be open (or paired with ``item`` already)."""
    what = f"{item.kind} {'refund' if item.refund_no else 'payment'} item"
    if resolution not in ALLOWED[(item.kind, item.refund_no is not None)]:
        raise ResolutionRefused(f"{resolution.value} does not close a {what}")
    if resolution is Resolution.CREDITED_LATE:
        return await _credited_late(db, item)
    if resolution is Resolution.REFUND_SETTLED:
        return await _refund_settled(db, item)
    if resolution is Resolution.TIMING_DIFFERENCE:
        return await _timing(db, item, counterpart)
    if resolution is Resolution.CHANNEL_REFUNDED:
        credited = await db.fetchval(
            "SELECT credited_at IS NOT NULL FROM payments.topup_orders WHERE order_no = $1 AND channel = $2",
            item.order_no,
            item.channel,
        )
        if credited:
            raise ResolutionRefused(
                "our order was credited to the card: the money was not simply returned "
                "(credited_late, or written_off if the channel refunded it too)"
            )
        return "no credited order"
    return None


async def _explained_elsewhere(
    db: Connection, item: SuspenseItem, fact: str, counterpart: SuspenseItem | None = None
) -> None:
    """Refused when the same fact already explains another of the channel's lines: for a payment,
    our order's one booking (another item resolved ``credited_late``, or a channel-only one paired
    by ``timing_difference``, ``counterpart`` aside); for a refund, its success (``refund_settled``).
    The unique index ``suspense_items_explained_once`` says the same to two resolvers at once."""
    other = await db.fetchrow(
        "SELECT business_date, resolution FROM payments.suspense_items WHERE channel = $1 "
        "AND order_no = $2 AND refund_no IS NOT DISTINCT FROM $3::text AND id <> $4 "
        "AND id IS DISTINCT FROM $5::uuid AND (resolution IN ('credited_late', 'refund_settled') "
        "OR (resolution = 'timing_difference' AND kind = 'channel_only')) "
        "ORDER BY business_date LIMIT 1",
        item.channel,
        item.order_no,
        item.refund_no,
        item.id,
        counterpart.id if counterpart else None,
    )
    if other is not None:
        raise ResolutionRefused(
            f"{fact} already explains the channel's line of {other['business_date'].isoformat()} "
            f"({other['resolution']}): this line is another movement of money (a second collection "
            "or refund, for the channel to return)"
        )


async def _credited_late(db: Connection, item: SuspenseItem) -> str:
    order = await db.fetchrow(
        "SELECT amount, paid_at, credited_at FROM payments.topup_orders WHERE order_no = $1 AND channel = $2",
        item.order_no,
        item.channel,
    )
    if order is None:
        raise ResolutionRefused(f"no order of ours has this number through {item.channel}")
    if order["credited_at"] is None:
        raise ResolutionRefused("our order has not been credited")
    if int(order["amount"]) != item.channel_amount:
        raise ResolutionRefused(
            f"our order is for {order['amount']} fen, the channel's line {item.channel_amount}"
        )
    # The money came in when the order was paid (a card loaded at a kiosk is credited later).
    paid_at: dt.datetime = order["paid_at"] or order["credited_at"]
    paid_on = business_date_of(paid_at)
    if paid_at < business_day_start(item.business_date):
        raise ResolutionRefused(
            f"our order was paid on {paid_on.isoformat()}, before the channel's line of "
            f"{item.business_date.isoformat()}: that payment answered an earlier line, not this one"
        )
    await _explained_elsewhere(db, item, "our order's payment")
    if paid_on != item.business_date:
        await _unmatched_on(db, item, paid_on)
    return f"order credited at {order['credited_at'].isoformat()}" + (
        f", paid on {paid_on.isoformat()} (platform-only there)" if paid_on != item.business_date else ""
    )


async def _unmatched_on(db: Connection, item: SuspenseItem, paid_on: dt.date) -> None:
    """Refused unless the reconciliation of ``paid_on`` (the day we booked the order) found the
    channel not listing it (a platform-only item): had it matched there, the payment would answer
    that day's line, and this one would be a second collection."""
    reconciled = await db.fetchval(
        "SELECT true FROM payments.reconciliations WHERE business_date = $1 AND channel = $2",
        paid_on,
        item.channel,
    )
    if not reconciled:
        raise ResolutionRefused(
            f"our order was paid on {paid_on.isoformat()}, a day not reconciled yet: the channel's "
            "statement of that day may list it too"
        )
    there = await db.fetchval(
        "SELECT s.kind FROM payments.suspense_items s WHERE s.business_date = $1 AND s.channel = $2 "
        "AND s.order_no = $3 AND s.refund_no IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM payments.suspense_items n WHERE n.supersedes = s.id) "
        "ORDER BY s.created_at DESC LIMIT 1",
        paid_on,
        item.channel,
        item.order_no,
    )
    if there != "platform_only":
        raise ResolutionRefused(
            f"the channel listed our order on {paid_on.isoformat()}, the day it was paid: our credit "
            "answers that line, and this one is another collection"
        )


async def _refund_settled(db: Connection, item: SuspenseItem) -> str:
    refund = await db.fetchrow(
        "SELECT r.amount, r.state, r.completed_at FROM payments.refunds r "
        "JOIN payments.topup_orders o ON o.id = r.order_id WHERE r.refund_no = $1 AND o.channel = $2",
        item.refund_no,
        item.channel,
    )
    if refund is None:
        raise ResolutionRefused(f"we have no refund of this number through {item.channel}")
    if refund["state"] != "succeeded":
        raise ResolutionRefused(f"our refund is {refund['state']}, not succeeded")
    if int(refund["amount"]) != item.channel_amount:
        raise ResolutionRefused(
            f"our refund is for {refund['amount']} fen, the channel's line {item.channel_amount}"
        )
    completed: dt.datetime | None = refund["completed_at"]
    if completed is None:
        raise ResolutionRefused("our refund's success has no time: it cannot be shown to follow the line")
    if completed < business_day_start(item.business_date):
        raise ResolutionRefused(
            f"our refund succeeded on {business_date_of(completed).isoformat()}, before the channel's "
            f"line of {item.business_date.isoformat()}: that success answered an earlier line"
        )
    await _explained_elsewhere(db, item, "our refund's success")
    return f"refund succeeded at {completed.isoformat()}"


async def counterpart_of(db: Connection, item: SuspenseItem) -> uuid.UUID | None:
    """For a payment's item, the opposite item a timing difference would pair it with: same
    channel, order and amount, another day, open or already paired with ``item``; the nearest day
    first. Read without a lock: the caller locks both (by id) and :func:`check` looks again."""
    if item.refund_no is not None or item.kind not in _OPPOSITE:
        return None
    amount = item.platform_amount if item.kind == "platform_only" else item.channel_amount
    found: uuid.UUID | None = await db.fetchval(
        "SELECT id FROM payments.suspense_items WHERE channel = $1 AND order_no = $2 "
        "AND refund_no IS NULL AND kind = $3 AND business_date <> $4 "
        "AND (CASE WHEN $3 = 'channel_only' THEN channel_amount ELSE platform_amount END) = $5 "
        "AND (state = 'open' OR (resolution = 'timing_difference' AND counterpart_id = $6)) "
        "ORDER BY abs(business_date - $4), business_date, id LIMIT 1",
        item.channel,
        item.order_no,
        _OPPOSITE[item.kind],
        item.business_date,
        amount,
        item.id,
    )
    return found


def _pairs(item: SuspenseItem, other: SuspenseItem) -> bool:
    """``other`` is ``item``'s opposite on another day for the same amount, free to pair with it."""
    mine = item.platform_amount if item.kind == "platform_only" else item.channel_amount
    theirs = other.platform_amount if other.kind == "platform_only" else other.channel_amount
    return (
        (other.channel, other.order_no, other.refund_no) == (item.channel, item.order_no, None)
        and other.kind == _OPPOSITE.get(item.kind)
        and other.business_date != item.business_date
        and theirs == mine
        and (
            other.state == "open"
            or (other.resolution == Resolution.TIMING_DIFFERENCE and other.counterpart_id == item.id)
        )
    )


async def _timing(db: Connection, item: SuspenseItem, counterpart: SuspenseItem | None) -> str:
    if item.refund_no is None:
        # The payment dated on the other side of midnight: the opposite item on another day, the
        # same amount (ours on one side, the channel's on the other), not explained otherwise.
        if counterpart is None:
            raise ResolutionRefused(
                f"no open {_OPPOSITE[item.kind]} item for this payment and amount on another day"
            )
        if not _pairs(item, counterpart):
            raise ResolutionRefused(
                f"the {_OPPOSITE[item.kind]} item of {counterpart.business_date.isoformat()} was "
                "resolved meanwhile; try again"
            )
        await _explained_elsewhere(db, item, "our order's payment", counterpart)
        return f"{counterpart.kind} on {counterpart.business_date.isoformat()}"
    # A platform-only refund: the channel listed it on a later day, where it matched (no item).
    later = await db.fetchval(
        "SELECT business_date FROM payments.reconciliations WHERE channel = $1 AND business_date > $2 "
        "AND $3 = ANY(refunds_matched_late) ORDER BY business_date LIMIT 1",
        item.channel,
        item.business_date,
        item.refund_no,
    )
    if later is None:
        raise ResolutionRefused("no later reconciliation of this channel matched the refund")
    return f"matched on {later.isoformat()}"
