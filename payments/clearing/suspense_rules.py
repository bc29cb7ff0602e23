"""Which resolution closes which suspense item, and the facts the database can check for it.

The table and the reasons are in ``payments.clearing.suspense``'s docstring; this module is the
rule itself, with the errors a resolution is refused with. :func:`check` runs in the resolving
transaction and answers the evidence it found (for the audit entry), or raises ``ResolutionRefused``.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final

from payments._db import Connection
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


async def check(db: Connection, item: SuspenseItem, resolution: Resolution) -> str | None:
    """The evidence for ``resolution`` of ``item`` (None: nothing to check), or ``ResolutionRefused``."""
    what = f"{item.kind} {'refund' if item.refund_no else 'payment'} item"
    if resolution not in ALLOWED[(item.kind, item.refund_no is not None)]:
        raise ResolutionRefused(f"{resolution.value} does not close a {what}")
    if resolution is Resolution.CREDITED_LATE:
        return await _credited_late(db, item)
    if resolution is Resolution.REFUND_SETTLED:
        return await _refund_settled(db, item)
    if resolution is Resolution.TIMING_DIFFERENCE:
        return await _timing(db, item)
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


async def _credited_late(db: Connection, item: SuspenseItem) -> str:
    order = await db.fetchrow(
        "SELECT amount, credited_at FROM payments.topup_orders WHERE order_no = $1 AND channel = $2",
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
    return f"order credited at {order['credited_at'].isoformat()}"


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
    return f"refund succeeded at {refund['completed_at'].isoformat() if refund['completed_at'] else '?'}"


async def _timing(db: Connection, item: SuspenseItem) -> str:
    if item.refund_no is None:
        # The payment dated on the other side of midnight: the opposite item on another day, the
        # same amount (ours on one side, the channel's on the other).
        amount = item.platform_amount if item.kind == "platform_only" else item.channel_amount
        other = await db.fetchval(
            "SELECT business_date FROM payments.suspense_items WHERE channel = $1 AND order_no = $2 "
            "AND refund_no IS NULL AND kind = $3 AND business_date <> $4 "
            "AND (CASE WHEN $3 = 'channel_only' THEN channel_amount ELSE platform_amount END) = $5 "
            "ORDER BY abs(business_date - $4), business_date LIMIT 1",
            item.channel,
            item.order_no,
            _OPPOSITE[item.kind],
            item.business_date,
            amount,
        )
        if other is None:
            raise ResolutionRefused(
                f"no {_OPPOSITE[item.kind]} item for this payment and amount on another day"
            )
        return f"{_OPPOSITE[item.kind]} on {other.isoformat()}"
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
