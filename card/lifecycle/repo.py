"""SQL for cards: rows, status changes and history. Functions named ``*_txn`` expect an open transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from card._db import Connection
from card.audit import Actor, AuditSink, DetailValue
from card.errors import CardNotFound
from card.keys.api import CardKeyRef
from card.lifecycle.states import Status
from card.lifecycle.views import (
    ApplicationView,
    BalanceRefund,
    CardSummary,
    CardView,
    DeviceView,
    EpurseView,
    LifecycleEvent,
)
from card.settings import CardSettings

__all__ = [
    "CardRow",
    "cancel_physical_request_txn",
    "card_view",
    "history",
    "key_ref_for",
    "latest_card_id_for_holder",
    "lock_card_txn",
    "note_txn",
    "record_event_txn",
    "search",
    "set_status_txn",
]

_LOCK_CARD = (
    "SELECT id, card_number, card_number_int, app_serial, holder_id, status, issued_on, expires_on,"
    " frozen_by FROM card.cards WHERE id = $1 FOR UPDATE"
)
_KEY_REF = (
    "SELECT c.app_serial, e.key_version FROM card.cards c JOIN card.epurses e ON e.card_id = c.id"
    " WHERE c.id = $1::uuid OR c.card_number = $2::text"
)


@dataclass(frozen=True, slots=True)
class CardRow:
    id: uuid.UUID
    card_number: str
    card_number_int: int
    app_serial: bytes
    holder_id: uuid.UUID
    status: Status
    issued_on: dt.date
    expires_on: dt.date
    frozen_by: str | None = None  # "holder" or "operator" while frozen

    @classmethod
    def of(cls, row: Any) -> CardRow:
        return cls(
            row["id"],
            row["card_number"],
            row["card_number_int"],
            bytes(row["app_serial"]),
            row["holder_id"],
            Status(row["status"]),
            row["issued_on"],
            row["expires_on"],
            row.get("frozen_by"),
        )


async def lock_card_txn(connection: Connection, card_id: uuid.UUID) -> CardRow:
    row = await connection.fetchrow(_LOCK_CARD, card_id)
    if row is None:
        raise CardNotFound("no such card")
    return CardRow.of(row)


async def latest_card_id_for_holder(connection: Connection, holder_id: uuid.UUID) -> uuid.UUID:
    """The holder's live card, else their most recent one (so a closed card answers 409, not 404)."""
    card_id = await connection.fetchval(
        "SELECT id FROM card.cards WHERE holder_id = $1"
        " ORDER BY status IN ('active', 'frozen', 'lost') DESC, created_at DESC LIMIT 1",
        holder_id,
    )
    if card_id is None:
        raise CardNotFound("you have no citizen card yet")
    assert isinstance(card_id, uuid.UUID)
    return card_id


async def set_status_txn(
    connection: Connection,
    card_id: uuid.UUID,
    status: Status,
    now: dt.datetime,
    *,
    frozen_by: str | None = None,
) -> None:
    """``frozen_by`` ("holder" or "operator"): who froze it, kept only while the card is frozen."""
    await connection.execute(
        "UPDATE card.cards SET status = $2, status_changed_at = $3, frozen_by = $4 WHERE id = $1",
        card_id,
        status.value,
        now,
        frozen_by if status is Status.FROZEN else None,
    )


async def record_event_txn(
    connection: Connection,
    card_id: uuid.UUID,
    *,
    action: str,
    from_status: Status | None,
    to_status: Status,
    actor: Actor,
    now: dt.datetime,
    details: dict[str, Any] | None = None,
) -> int:
    """Append to the card's history; returns the event id (the dedupe key of its notice)."""
    event_id = await connection.fetchval(
        "INSERT INTO card.lifecycle_events (card_id, occurred_at, action, from_status, to_status, actor_kind,"
        " actor_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        card_id,
        now,
        action,
        from_status.value if from_status else None,
        to_status.value,
        actor.kind,
        actor.id,
        details or {},
    )
    assert isinstance(event_id, int)
    return event_id


async def note_txn(
    connection: Connection,
    card_id: uuid.UUID,
    *,
    action: str,
    status: Status,
    actor: Actor,
    now: dt.datetime,
    details: dict[str, DetailValue],
    audit: AuditSink | None,
) -> None:
    """Record ``action``, which leaves the card in ``status``, in its history and (if there is an
    ``audit`` sink) the audit log under the same name."""
    await record_event_txn(
        connection,
        card_id,
        action=action,
        from_status=status,
        to_status=status,
        actor=actor,
        now=now,
        details=details,
    )
    if audit is not None:
        await audit(connection, actor, action, card_id, details)


async def cancel_physical_request_txn(connection: Connection, card_id: uuid.UUID) -> uuid.UUID | None:
    """Cancel the card's open physical card request, if any; returns its id. A card that is lost,
    replaced or closed must never be sent to the bureau under its number."""
    request_id = await connection.fetchval(
        "UPDATE card.physical_requests SET status = 'cancelled'"
        " WHERE card_id = $1 AND status = 'requested' RETURNING id",
        card_id,
    )
    assert request_id is None or isinstance(request_id, uuid.UUID)
    return request_id


async def key_ref_for(connection: Connection, card: uuid.UUID | str, settings: CardSettings) -> CardKeyRef:
    """The key store's :class:`CardKeyRef` for a card, by id or card number (one indexed query)."""
    by_id = card if isinstance(card, uuid.UUID) else None
    row = await connection.fetchrow(_KEY_REF, by_id, None if by_id else card)
    if row is None:
        raise CardNotFound("no such card")
    return CardKeyRef(int(row["key_version"]), bytes(row["app_serial"]), settings.issuer_id)


async def card_view(connection: Connection, card_id: uuid.UUID, *, balance: int | None = None) -> CardView:
    row = await connection.fetchrow(
        """
        SELECT c.*, e.key_version, e.ledger_account_id, e.offline_counter, e.online_counter,
               e.overdraft_limit, e.concession,
               (SELECT status FROM card.physical_requests p WHERE p.card_id = c.id
                ORDER BY requested_at DESC LIMIT 1) AS physical_request,
               (SELECT status FROM card.balance_transfers b WHERE b.old_card_id = c.id) AS balance_transfer,
               r.status AS balance_refund, r.due_at AS refund_due_at, r.balance AS refund_balance,
               r.refunded, r.unrefunded
        FROM card.cards c LEFT JOIN card.epurses e ON e.card_id = c.id
        LEFT JOIN card.close_refunds r ON r.card_id = c.id WHERE c.id = $1
        """,
        card_id,
    )
    if row is None:
        raise CardNotFound("no such card")
    apps = await connection.fetch(
        "SELECT app_type, status, attributes FROM card.applications WHERE card_id = $1 ORDER BY app_type",
        card_id,
    )
    device = await connection.fetchrow(
        "SELECT id, device_label, bound_at, expires_at FROM card.device_bindings"
        " WHERE card_id = $1 AND status = 'active'",
        card_id,
    )
    epurse = None
    if row["key_version"] is not None:
        epurse = EpurseView(
            balance=balance,
            offline_counter=row["offline_counter"],
            online_counter=row["online_counter"],
            overdraft_limit=row["overdraft_limit"],
            concession=row["concession"],
            key_version=row["key_version"],
        )
    return CardView(
        id=row["id"],
        card_number=row["card_number"],
        status=row["status"],
        issued_on=row["issued_on"],
        expires_on=row["expires_on"],
        physical=row["physical"],
        replaces_id=row["replaces_id"],
        frozen_by=row["frozen_by"],
        applications=[
            ApplicationView(type=a["app_type"], status=a["status"], attributes=a["attributes"]) for a in apps
        ],
        epurse=epurse,
        device=None
        if device is None
        else DeviceView(
            id=device["id"],
            label=device["device_label"],
            bound_at=device["bound_at"],
            authorisation_expires_at=device["expires_at"],
        ),
        physical_request=row["physical_request"],
        balance_transfer=row["balance_transfer"],
        balance_refund=row["balance_refund"],
        refund_due_at=row["refund_due_at"],
        refund=(
            BalanceRefund(
                balance=row["refund_balance"],
                refunded=row["refunded"],
                unrefunded=row["unrefunded"],
                refunds=[],  # the refund lines are in the card's history (``refund_balance``)
            )
            if row["balance_refund"] == "done"
            else None
        ),
    )


async def history(connection: Connection, card_id: uuid.UUID) -> list[LifecycleEvent]:
    rows = await connection.fetch(
        "SELECT occurred_at, action, from_status, to_status, actor_kind, actor_id, details"
        " FROM card.lifecycle_events WHERE card_id = $1 ORDER BY id",
        card_id,
    )
    if not rows and not await connection.fetchval("SELECT true FROM card.cards WHERE id = $1", card_id):
        raise CardNotFound("no such card")
    return [LifecycleEvent(**dict(r)) for r in rows]


async def search(
    connection: Connection,
    *,
    card_number: str | None = None,
    holder_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[CardSummary]:
    rows = await connection.fetch(
        """
        SELECT id, card_number, holder_id, status, issued_on, status_changed_at FROM card.cards
        WHERE ($1::text IS NULL OR card_number = $1) AND ($2::uuid IS NULL OR holder_id = $2)
          AND ($3::text IS NULL OR status = $3)
        ORDER BY created_at DESC LIMIT $4
        """,
        card_number,
        holder_id,
        status,
        limit,
    )
    return [CardSummary(**dict(r)) for r in rows]
