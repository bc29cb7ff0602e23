"""Messages in PostgreSQL (``integrations.messages``): write with ``notify``, read per recipient.

Unread counts come from a partial index (``WHERE read_at IS NULL``): exact, one index-only scan.
The home keeps a copy in Redis (``integrations.entrance.glance``), told of every commit here by
the triggers of migration 0003 (``NOTIFY citizen_home``), whichever transaction ``notify`` joins.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Literal

import msgspec

from integrations._db import Connection, Pool

__all__ = [
    "KINDS",
    "Message",
    "MessagePage",
    "Recipient",
    "list_messages",
    "mark_all_read",
    "mark_read",
    "notify",
    "parse_cursor",
    "unread_count",
]

# The kinds the app knows how to show; other well-formed kinds are stored and shown generically.
KINDS: dict[str, str] = {
    "card.frozen": "the citizen card was frozen",
    "card.lost": "the citizen card was reported lost",
    "payments.topup_credited": "a top-up reached the e-purse",
    "health.appointment_booked": "a hospital appointment was booked",
    "gov.application_status_changed": "a government application changed status",
}
_KIND = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")


class Recipient(msgspec.Struct, frozen=True):
    kind: Literal["person", "organisation"]
    id: uuid.UUID

    @classmethod
    def person(cls, account_id: uuid.UUID) -> Recipient:
        return cls("person", account_id)

    @classmethod
    def organisation(cls, organisation_id: uuid.UUID) -> Recipient:
        return cls("organisation", organisation_id)


class Message(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: dt.datetime
    read_at: dt.datetime | None


class MessagePage(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[Message]
    unread: int
    next_cursor: str | None  # pass as ``cursor`` for the next (older) page


def _cursor(message: Message) -> str:
    return f"{message.created_at.isoformat()}~{message.id}"


def parse_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    """``ValueError`` if it is not one of ours."""
    at, _, ident = cursor.partition("~")
    moment = dt.datetime.fromisoformat(at)
    if moment.tzinfo is None:
        raise ValueError("cursor without a time zone")
    return moment, uuid.UUID(ident)


async def notify(  # noqa: PLR0917 - the call the other domains make
    db: Pool | Connection,
    recipient: Recipient,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
) -> uuid.UUID | None:
    """Put a message in the recipient's inbox; returns its id, or None if ``dedupe_key`` was
    already delivered to this recipient (so an event handled twice is one message).

    With a connection the insert joins the caller's transaction: the message exists exactly when
    the event does. ``data``: JSON-serialisable details for the app (ids, amounts in fen).
    """
    if not _KIND.match(kind):
        raise ValueError(f"message kind {kind!r}: expected lower-case dotted words, e.g. 'card.frozen'")
    if not 1 <= len(title) <= 200 or len(body) > 4000:
        raise ValueError("title 1-200 characters, body at most 4000")
    message_id = uuid.uuid4()
    inserted = await db.fetchval(
        """
        INSERT INTO integrations.messages
            (id, recipient_kind, recipient_id, kind, title, body, data, dedupe_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
        ON CONFLICT (recipient_kind, recipient_id, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
        RETURNING id
        """,
        message_id,
        recipient.kind,
        recipient.id,
        kind,
        title,
        body,
        msgspec.json.encode(data or {}).decode(),
        dedupe_key,
    )
    return inserted if isinstance(inserted, uuid.UUID) else None


async def unread_count(db: Pool | Connection, recipient: Recipient) -> int:
    count = await db.fetchval(
        "SELECT count(*) FROM integrations.messages"
        " WHERE recipient_kind = $1 AND recipient_id = $2 AND read_at IS NULL",
        recipient.kind,
        recipient.id,
    )
    return int(count or 0)


async def list_messages(
    db: Pool,
    recipient: Recipient,
    *,
    limit: int = 20,
    cursor: str | None = None,
    unread_only: bool = False,
) -> MessagePage:
    """Newest first; ``cursor`` (from the previous page's ``next_cursor``) continues after it."""
    at, ident = parse_cursor(cursor) if cursor else (None, None)
    rows = await db.fetch(
        """
        SELECT id, kind, title, body, data, created_at, read_at FROM integrations.messages
        WHERE recipient_kind = $1 AND recipient_id = $2
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
          AND (NOT $5 OR read_at IS NULL)
        ORDER BY created_at DESC, id DESC LIMIT $6
        """,
        recipient.kind,
        recipient.id,
        at,
        ident,
        unread_only,
        limit + 1,
    )
    more = len(rows) > limit
    messages = [
        Message(
            id=r["id"],
            kind=r["kind"],
            title=r["title"],
            body=r["body"],
            data=msgspec.json.decode(r["data"]) if isinstance(r["data"], str) else dict(r["data"]),
            created_at=r["created_at"],
            read_at=r["read_at"],
        )
        for r in rows[:limit]
    ]
    return MessagePage(
        messages=messages,
        unread=await unread_count(db, recipient),
        next_cursor=_cursor(messages[-1]) if more and messages else None,
    )


async def mark_read(db: Pool | Connection, recipient: Recipient, message_id: uuid.UUID) -> bool:
    """False if the recipient has no such message (someone else's is "no such message" too)."""
    found = await db.fetchval(
        """
        UPDATE integrations.messages SET read_at = coalesce(read_at, now())
        WHERE id = $1 AND recipient_kind = $2 AND recipient_id = $3 RETURNING id
        """,
        message_id,
        recipient.kind,
        recipient.id,
    )
    return found is not None


async def mark_all_read(db: Pool | Connection, recipient: Recipient) -> int:
    result = await db.execute(
        "UPDATE integrations.messages SET read_at = now()"
        " WHERE recipient_kind = $1 AND recipient_id = $2 AND read_at IS NULL",
        recipient.kind,
        recipient.id,
    )
    return int(result.split()[-1])
