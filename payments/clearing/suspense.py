"""Resolving the suspense items reconciliation opens (``payments.clearing.reconcile``).

A suspense item is a line of a channel's statement and our records that disagree for a business
day: channel-only (长款: the channel moved money our books do not show), platform-only (短款: ours
show money the channel does not list) or an amount mismatch; about a payment, or about one refund
of a top-up order (``refund_no``). The back office closes each one with a **resolution** saying how
the difference was explained, a **note** (what the resolver found, 1 to 500 characters) and, for
some resolutions, a **reference** (the channel's document, 1 to 100 characters):

========================  =====================================  ==========================================
resolution                closes                                 checked here (409 when the database says no)
========================  =====================================  ==========================================
``credited_late``         a channel-only payment                 our order of that number and channel has
                                                                 since been credited, for the channel's amount
                                                                 (notification lost, paid after midnight);
                                                                 *and* our payment explains no other line:
                                                                 booked (``paid_at``) no earlier than the
                                                                 line's day starts (China midnight), no other
                                                                 item of the order closed by it
                                                                 (credited_late, or a channel-only one paired
                                                                 as a timing difference), and, booked on a
                                                                 later day, that day reconciled with the
                                                                 channel not listing it (a platform-only item;
                                                                 had it matched there, this line would be a
                                                                 second collection)
``refund_settled``        a channel-only refund                  our refund of that number has since
                                                                 succeeded, for the channel's amount (its
                                                                 outcome was settled after the statement), no
                                                                 earlier than the line's day starts, and no
                                                                 other item of that refund was closed by it
``timing_difference``     a payment either side, or a            the same line is on another day with the same
                          platform-only refund                   amount: for a payment, the opposite item
                                                                 (platform-only one day, channel-only the
                                                                 other), still open, which is resolved with
                                                                 this one (``counterpart_id``, each naming the
                                                                 other; an item pairs once), our payment
                                                                 explaining no other line; for a refund, a
                                                                 later day's reconciliation matched it
                                                                 (``refunds_matched_late``)
``channel_refunded``      a channel-only payment                 reference required (the channel's refund
                                                                 number); refused if our order of that number
                                                                 was credited: the payer would then hold both
                                                                 the money and the top-up
``channel_corrected``     any item                               reference required (the channel's corrected
                                                                 statement or ticket); the channel's word, not
                                                                 checkable here
``written_off``           any item                               nothing beyond the note: a decision
========================  =====================================  ==========================================

A resolution not listed for the item's kind is refused (409) as well. One fact explains one line of
a channel's statement: our order's payment (booked once) one channel-only payment, however it is
claimed (``credited_late``, or paired as a ``timing_difference``); a refund's success one channel
refund line. Another line naming the same order is another movement of money (a second collection,
a refund paid twice) for the channel to return, a ``channel_corrected`` or ``written_off``
decision, never a late credit. The unique index ``suspense_items_explained_once`` holds this
against two resolvers at once. **The ledger is not touched**: reconciliation compares statements,
while the money of a top-up is booked when it is credited (the channel's clearing account to the
e-purse); what a write-off or a channel's correction would post (the SUSPENSE account against the
channel's clearing account, and when) is a rule this platform has not set, so a resolution records
the decision and its evidence only.

Resolving is one transaction: the item locked (``FOR UPDATE``; with its counterpart for a timing
difference, both by id, so that two resolvers pairing the same items wait rather than deadlock),
the rules above checked, the item moved by a conditional ``UPDATE … WHERE state = 'open' RETURNING``
(at most once: a second resolution is a 409, an unknown id a 404) and ``payments.suspense.resolve``
audited. A timing difference moves its counterpart the same way, with a note saying which item it
was paired with, audited on its own (``paired_with``). A refused attempt is audited too (outcome
``failure``, the refusal's problem type). The audit details hold the kind, channel, date, amounts
and the evidence found, never an order number or the note's text (the item, the entry's target,
keeps those). An item a re-run of reconciliation replaced (``supersedes``: a re-issued statement
showed other figures for a resolved line) stays as it was resolved; the new one is resolved on its
own figures.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final, Literal

import asyncpg
import msgspec

from payments._db import Connection, Pool
from payments.clearing.audit import Actor, audit_txn
from payments.clearing.suspense_rules import (
    InvalidResolution,
    Resolution,
    ResolutionRefused,
    SuspenseItemNotFound,
    SuspenseItemResolved,
    check,
    counterpart_of,
)
from payments.errors import PaymentsError

__all__ = [
    "InvalidResolution",
    "Resolution",
    "ResolutionRefused",
    "ResolveSuspense",
    "StateFilter",
    "SuspenseItem",
    "SuspenseItemNotFound",
    "SuspenseItemResolved",
    "SuspensePage",
    "list_items",
    "resolve_item",
]

StateFilter = Literal["open", "resolved", "all"]
NOTE_MAX: Final = 500
REFERENCE_MAX: Final = 100
_COLUMNS: Final = (
    "id, business_date, channel, order_no, refund_no, kind, platform_amount, channel_amount, "
    "platform_state, state, created_at, resolved_at, resolved_by, resolution, note, reference, "
    "counterpart_id, supersedes"
)
_SELECT: Final = f"SELECT {_COLUMNS} FROM payments.suspense_items WHERE id = $1"  # noqa: S608
# Locked by id, whichever was asked for: two resolvers pairing the same two items wait, never deadlock.
_LOCK: Final = (
    f"SELECT {_COLUMNS} FROM payments.suspense_items WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"  # noqa: S608
)
_RESOLVE: Final = (
    "UPDATE payments.suspense_items SET state = 'resolved', resolved_at = now(), resolved_by = $2, "  # noqa: S608
    "resolution = $3, note = $4, reference = $5, counterpart_id = $6 WHERE id = $1 AND state = 'open' "
    f"RETURNING {_COLUMNS}"
)


class ResolveSuspense(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``POST …/suspense/{id}/resolve``: how the difference was explained (module docstring)."""

    resolution: Resolution
    note: str  # what the resolver found: 1 to 500 characters
    reference: str | None = None  # the channel's refund or correction number, 1 to 100 characters


class SuspenseItem(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    business_date: dt.date
    channel: str
    order_no: str
    refund_no: str | None  # set: the item is about this refund of the order
    kind: str  # channel_only, platform_only, amount_mismatch
    platform_amount: int | None  # fen
    channel_amount: int | None  # fen
    platform_state: str | None  # our refund's state when the item was opened
    state: str  # open, resolved
    created_at: dt.datetime
    resolved_at: dt.datetime | None = None
    resolved_by: str | None = None
    resolution: str | None = None
    note: str | None = None
    reference: str | None = None
    counterpart_id: uuid.UUID | None = None  # timing_difference: the opposite item, resolved with it
    supersedes: uuid.UUID | None = None  # the resolved item of the same line a re-run replaced


class SuspensePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SuspenseItem]
    next_after: uuid.UUID | None  # pass as ``after`` for the next page; None: this was the last


def _item(row: Any) -> SuspenseItem:
    return msgspec.convert(dict(row), SuspenseItem)


async def list_items(
    db: Pool | Connection,
    *,
    state: StateFilter = "open",
    business_date: dt.date | None = None,
    channel: str | None = None,
    limit: int = 100,
    after: uuid.UUID | None = None,
) -> SuspensePage:
    """Items by business date, then as opened; at most ``limit`` (1..500), those after ``after``."""
    limit = max(1, min(limit, 500))
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM payments.suspense_items "  # noqa: S608 - constant columns
        "WHERE ($1 = 'all' OR state = $1) AND ($2::date IS NULL OR business_date = $2) "
        "AND ($3::text IS NULL OR channel = $3) AND ($4::uuid IS NULL OR (business_date, created_at, id) > "
        "(SELECT business_date, created_at, id FROM payments.suspense_items WHERE id = $4)) "
        "ORDER BY business_date, created_at, id LIMIT $5",
        state,
        business_date,
        channel,
        after,
        limit,
    )
    items = [_item(r) for r in rows]
    return SuspensePage(items=items, next_after=items[-1].id if len(items) == limit else None)


def _bounded(request: ResolveSuspense) -> tuple[str, str | None]:
    """The note and reference as stored (trimmed), or ``InvalidResolution``."""
    note = request.note.strip()
    reference = (request.reference or "").strip() or None
    if not 1 <= len(note) <= NOTE_MAX:
        raise InvalidResolution(f"a note of 1 to {NOTE_MAX} characters is required")
    if reference is not None and len(reference) > REFERENCE_MAX:
        raise InvalidResolution(f"the reference is at most {REFERENCE_MAX} characters")
    if reference is None and request.resolution in {
        Resolution.CHANNEL_REFUNDED,
        Resolution.CHANNEL_CORRECTED,
    }:
        raise InvalidResolution(f"{request.resolution.value} needs the channel's document as reference")
    return note, reference


async def resolve_item(
    pool: Pool, item_id: uuid.UUID, request: ResolveSuspense, actor: Actor
) -> SuspenseItem:
    """Resolve the open item ``item_id`` (module docstring); audited, refused or not. A refusal
    changed nothing, so its audit entry commits in the same transaction before it is raised. A
    timing difference resolves the opposite item too, audited on its own as paired with this one."""
    details: dict[str, Any] = {"resolution": request.resolution.value}
    target = ("suspense_item", str(item_id))
    async with pool.acquire() as db, db.transaction():
        try:
            resolved, paired = await _resolve_txn(db, item_id, request, actor, details)
        except (SuspenseItemNotFound, SuspenseItemResolved, ResolutionRefused, InvalidResolution) as exc:
            refused: PaymentsError = exc
        else:
            await audit_txn(db, actor, "suspense.resolve", target, details)
            if paired is not None:
                await audit_txn(
                    db,
                    actor,
                    "suspense.resolve",
                    ("suspense_item", str(paired.id)),
                    {
                        **_described(paired),
                        "resolution": request.resolution.value,
                        "evidence": f"{resolved.kind} on {resolved.business_date.isoformat()}",
                        "paired_with": str(resolved.id),
                    },
                )
            return resolved
        await audit_txn(
            db,
            actor,
            "suspense.resolve",
            target,
            {**details, "refused": refused.problem_type},
            outcome="failure",
        )
    raise refused


def _described(item: SuspenseItem) -> dict[str, Any]:
    """What an audit entry says of ``item``: never its order number (the target has it)."""
    return {
        "kind": item.kind,
        "refund": item.refund_no is not None,
        "channel": item.channel,
        "business_date": item.business_date.isoformat(),
        "platform_amount": item.platform_amount,
        "channel_amount": item.channel_amount,
    }


def _paired_note(item: SuspenseItem, note: str) -> str:
    """The counterpart's note: which item it was paired with, then the resolver's note."""
    head = f"timing difference paired with suspense item {item.id} of {item.business_date.isoformat()}: "
    text = head + note
    return text if len(text) <= NOTE_MAX else text[: NOTE_MAX - 1] + "…"


async def _resolve_txn(
    db: Connection, item_id: uuid.UUID, request: ResolveSuspense, actor: Actor, details: dict[str, Any]
) -> tuple[SuspenseItem, SuspenseItem | None]:
    """The item locked, checked and resolved; ``details`` gets what the audit entry says of it.
    Answers the item and, for a timing difference, the counterpart this resolved with it (None when
    it had been paired with this item already)."""
    note, reference = _bounded(request)
    row = await db.fetchrow(_SELECT, item_id)
    if row is None:
        raise SuspenseItemNotFound(f"no suspense item {item_id}")
    pair: uuid.UUID | None = None
    if request.resolution is Resolution.TIMING_DIFFERENCE and row["state"] == "open":
        pair = await counterpart_of(db, _item(row))
    ids = sorted({item_id} if pair is None else {item_id, pair})
    locked = {r["id"]: _item(r) for r in await db.fetch(_LOCK, ids)}
    item = locked[item_id]
    counterpart = locked.get(pair) if pair is not None else None
    details |= _described(item)
    if item.state != "open":
        resolved = SuspenseItemResolved(f"resolved as {item.resolution} at {item.resolved_at}")
        resolved.problem_extra = {"resolution": item.resolution}
        raise resolved
    details["evidence"] = await check(db, item, request.resolution, counterpart)
    if counterpart is not None:
        details["paired_with"] = str(counterpart.id)
    who = actor.id or actor.kind
    try:
        # A savepoint: a unique index refusing (another item explained by the same fact, resolved
        # meanwhile) leaves the transaction usable for the refusal's audit entry.
        async with db.transaction():
            row = await db.fetchrow(
                _RESOLVE,
                item_id,
                who,
                request.resolution.value,
                note,
                reference,
                counterpart.id if counterpart else None,
            )
            # Conditional on 'open' even under the row lock: the statement alone keeps "at most once".
            if row is None:
                raise SuspenseItemResolved(f"suspense item {item_id} was resolved meanwhile")
            paired = None
            if counterpart is not None and counterpart.state == "open":
                other = await db.fetchrow(
                    _RESOLVE,
                    counterpart.id,
                    who,
                    request.resolution.value,
                    _paired_note(item, note),
                    reference,
                    item_id,
                )
                if other is None:
                    raise SuspenseItemResolved(f"suspense item {counterpart.id} was resolved meanwhile")
                paired = _item(other)
    except asyncpg.UniqueViolationError as exc:
        raise ResolutionRefused(
            "another suspense item was resolved meanwhile on the same evidence "
            f"({exc.constraint_name}): look again"
        ) from exc
    return _item(row), paired
