"""The back office's API for reconciliation suspense items (``payments.clearing.suspense``).

``GET /api/v1/admin/payments/suspense?state=open|resolved|all&business_date=&channel=&limit=&after=``
lists them (open by default, by business date, at most ``limit``, 100 by default and 500 at most;
``next_after`` pages on); ``POST /api/v1/admin/payments/suspense/{id}/resolve`` resolves one.

Only the city's operators reach it, by role, as the card's admin API does for its own queues:
reading, ``support``, ``security_admin`` or ``auditor``; resolving, which closes a money question
for good, ``support`` or ``security_admin`` (the roles that resolve the card's doubtful loads; the
operator catalogue has no finance role, and auditors only read). Both are audited
(``payments.suspense.list`` with the filter and the count; ``payments.suspense.resolve``, refused
attempts too) under the operator's account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Final, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from identity.auth import Principal, requires_operator_role
from payments.clearing.audit import Actor, audit_txn
from payments.clearing.suspense import (
    ResolveSuspense,
    SuspenseItem,
    SuspensePage,
    list_items,
    resolve_item,
)
from payments.topup.service import TopupService

__all__ = ["SuspenseController"]

Req = Request[Any, Any, Any]
_READERS: Final = requires_operator_role("support", "security_admin", "auditor")
_RESOLVERS: Final = requires_operator_role("support", "security_admin")
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Channel = Annotated[str | None, QueryParameter(max_length=32)]
# ``state`` is a name Litestar reserves (the app's state): the query parameter keeps it all the same.
StateQuery = Annotated[Literal["open", "resolved", "all"], QueryParameter(name="state")]


def _actor(principal: Principal, request: Req) -> Actor:
    return Actor(
        kind=principal.kind,
        id=str(principal.account_id),
        client_address=request.client.host if request.client else None,
        request_id=request.headers.get("x-request-id"),
    )


class SuspenseController(Controller):
    path = "/api/v1/admin/payments/suspense"
    tags = ["payments-admin"]  # noqa: RUF012

    @get("", operation_id="ListSuspenseItems", guards=[_READERS])
    async def list_suspense(  # noqa: PLR0917 - Litestar passes them by name
        self,
        request: Req,
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
        wanted: StateQuery = "open",
        business_date: FromQuery[dt.date | None] = None,
        channel: Channel = None,
        limit: Limit = 100,
        after: FromQuery[uuid.UUID | None] = None,
    ) -> SuspensePage:
        """Reconciliation suspense items, by business date; open ones unless ``state`` says otherwise."""
        page = await list_items(
            payments.pool,
            state=wanted,
            business_date=business_date,
            channel=channel,
            limit=limit,
            after=after,
        )
        filters = {
            "state": wanted,
            "business_date": business_date.isoformat() if business_date else None,
            "channel": channel,
        }
        async with payments.pool.acquire() as db, db.transaction():
            await audit_txn(
                db, _actor(principal, request), "suspense.list", None, {**filters, "count": len(page.items)}
            )
        return page

    @post("/{item_id:uuid}/resolve", operation_id="ResolveSuspenseItem", status_code=200, guards=[_RESOLVERS])
    async def resolve(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
        item_id: FromPath[uuid.UUID],
        data: JSONBody[ResolveSuspense],
    ) -> SuspenseItem:
        """Close an open item with a resolution, a note and, for some resolutions, a reference;
        a claim the database can check is checked (409 when it says otherwise)."""
        return await resolve_item(payments.pool, item_id, data, _actor(principal, request))
