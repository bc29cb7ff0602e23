"""``/api/v1/messages``: the signed-in person's inbox, or the organisation's they act for."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.status_codes import HTTP_200_OK

from identity.auth import Principal, requires_person
from integrations._db import Pool
from integrations.errors import InvalidQuery, MessageNotFound
from integrations.messages.store import (
    MessagePage,
    Recipient,
    list_messages,
    mark_all_read,
    mark_read,
    unread_count,
)

__all__ = ["MessagesController", "UnreadCount", "recipient_of"]


class UnreadCount(msgspec.Struct, frozen=True, kw_only=True):
    unread: int


class Marked(msgspec.Struct, frozen=True, kw_only=True):
    marked: int


def recipient_of(principal: Principal) -> Recipient:
    """Acting for an organisation: its inbox (any agent of it); otherwise the person's own."""
    if principal.acting_for is not None:
        return Recipient.organisation(principal.acting_for)
    return Recipient.person(principal.account_id)


class MessagesController(Controller):
    path = "/api/v1/messages"
    tags = ["messages"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @get("", operation_id="ListMessages")
    async def list(
        self,
        principal: NamedDependency[Principal],
        db_pool: NamedDependency[Pool],
        limit: FromQuery[int] = 20,
        cursor: FromQuery[str | None] = None,
        unread: FromQuery[bool] = False,
    ) -> MessagePage:
        """Newest first, ``limit`` (1-100) at a time; ``next_cursor`` continues."""
        if not 1 <= limit <= 100:
            raise InvalidQuery("limit is 1 to 100")
        try:
            return await list_messages(
                db_pool, recipient_of(principal), limit=limit, cursor=cursor, unread_only=unread
            )
        except ValueError:
            raise InvalidQuery("cursor: pass the next_cursor of a previous page") from None

    @get("/unread-count", operation_id="CountUnreadMessages")
    async def unread_count(
        self, principal: NamedDependency[Principal], db_pool: NamedDependency[Pool]
    ) -> UnreadCount:
        return UnreadCount(unread=await unread_count(db_pool, recipient_of(principal)))

    @post("/{message_id:uuid}/read", operation_id="MarkMessageRead", status_code=HTTP_200_OK)
    async def mark_read(
        self,
        principal: NamedDependency[Principal],
        db_pool: NamedDependency[Pool],
        message_id: FromPath[uuid.UUID],
    ) -> UnreadCount:
        """Idempotent; answers the unread count after it."""
        recipient = recipient_of(principal)
        if not await mark_read(db_pool, recipient, message_id):
            raise MessageNotFound("no such message in this inbox")
        return UnreadCount(unread=await unread_count(db_pool, recipient))

    @post("/read", operation_id="MarkAllMessagesRead", status_code=HTTP_200_OK)
    async def mark_all_read(
        self, principal: NamedDependency[Principal], db_pool: NamedDependency[Pool]
    ) -> Marked:
        return Marked(marked=await mark_all_read(db_pool, recipient_of(principal)))
