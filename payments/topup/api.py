"""The app's top-up API (a citizen on their own card) and the channels' notification endpoint.

Money-moving POSTs take an ``Idempotency-Key`` header (``payments.topup.idempotency``): the same
key and parameters replay the stored response (``Idempotency-Replayed: true``), other parameters
422, a request still running 409 (one interrupted for 90 s is taken over; should it still be
running, it can no longer store its answer and gets a 409 too). Failed requests are not stored, so
they can be retried. Creating an order and reserving a refund store their response in
the transaction that does the work, so a retry never repeats them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody

from identity.auth import Principal, requires_person
from payments.errors import PaymentsError
from payments.topup import idempotency
from payments.topup.models import CreateTopup, PayTopup, RefundRequest, RefundView, TopupView
from payments.topup.refunds import refund_topup
from payments.topup.service import Actor, TopupService

__all__ = ["NotificationController", "TopupController"]

Req = Request[Any, Any, Any]
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]


class NotOwnTopup(PaymentsError):
    problem_type = "act-for-yourself"
    problem_title = "Top-ups are for your own card"
    problem_status = 403


def _person(principal: Principal) -> uuid.UUID:
    if principal.acting_for is not None:
        raise NotOwnTopup("switch back to acting for yourself to top up your own card")
    return principal.account_id


def _actor(principal: Principal, request: Req) -> Actor:
    return Actor(
        kind=principal.kind,
        id=str(principal.account_id),
        client_address=request.client.host if request.client else None,
        request_id=request.headers.get("x-request-id"),
    )


async def _idempotent(
    service: TopupService,
    *,
    scope: str,
    key: str | None,
    operation: str,
    params: Any,
    work: Callable[[idempotency.Claim], Awaitable[msgspec.Struct]],
    status: int,
) -> Response[bytes]:
    held = await idempotency.claim(service.pool, scope, key, operation, params, status=status)
    if isinstance(held, idempotency.Stored):
        return Response(
            held.body,
            status_code=held.status,
            media_type="application/json",
            headers={"Idempotency-Replayed": "true"},
        )
    try:
        result = await work(held)
    except BaseException:
        await idempotency.release(service.pool, held)  # not if a retry has taken the key over
        raise
    body = msgspec.json.encode(result)
    # Taken over meanwhile (work that stores no response of its own): the retry's answer is the key's.
    await idempotency.finish(service.pool, held, body)
    return Response(body, status_code=status, media_type="application/json")


class TopupController(Controller):
    path = "/api/v1/payments/topups"
    tags = ["payments"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @post("", operation_id="CreateTopup", status_code=201)
    async def create(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
        data: JSONBody[CreateTopup],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Create a top-up order for your card's e-purse (amount in fen; channel optional here)."""
        person = _person(principal)
        actor = _actor(principal, request)
        return await _idempotent(
            payments, scope=str(person), key=idempotency_key, operation="create", params=data,
            work=lambda claim: payments.create(person, data, actor, claim=claim), status=201,
        )  # fmt: skip

    @get("", operation_id="ListMyTopups")
    async def mine(
        self, principal: NamedDependency[Principal], payments: NamedDependency[TopupService]
    ) -> list[TopupView]:
        return await payments.list_for(_person(principal))

    @get("/{order_id:uuid}", operation_id="GetTopup")
    async def one(
        self,
        order_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
    ) -> TopupView:
        return await payments.get(_person(principal), order_id)

    @post("/{order_id:uuid}/pay", operation_id="PayTopup", status_code=200)
    async def pay(  # noqa: PLR0917 - Litestar passes them by name
        self,
        request: Req,
        order_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
        data: JSONBody[PayTopup],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        """Start paying through a channel: the answer's ``pay_url`` opens the channel's app."""
        person = _person(principal)
        actor = _actor(principal, request)
        return await _idempotent(
            payments, scope=str(person), key=idempotency_key, operation=f"pay:{order_id}", params=data,
            work=lambda _: payments.pay(person, order_id, data.channel, actor), status=200,
        )  # fmt: skip

    @post("/{order_id:uuid}/refund", operation_id="RefundTopup", status_code=200)
    async def refund(  # noqa: PLR0917 - Litestar passes them by name
        self,
        request: Req,
        order_id: FromPath[uuid.UUID],
        principal: NamedDependency[Principal],
        payments: NamedDependency[TopupService],
        data: JSONBody[RefundRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[bytes]:
        person = _person(principal)
        actor = _actor(principal, request)

        async def work(claim: idempotency.Claim) -> RefundView:
            return await refund_topup(
                payments, order_id, person_id=person, amount=data.amount, reason=data.reason, actor=actor,
                claim=claim,
            )  # fmt: skip

        operation = f"refund:{order_id}"
        return await _idempotent(
            payments,
            scope=str(person),
            key=idempotency_key,
            operation=operation,
            params=data,
            work=work,
            status=200,
        )


class NotificationController(Controller):
    path = "/api/v1/payments/notify"
    tags = ["payments"]  # noqa: RUF012

    @post("/{channel:str}", operation_id="ChannelNotification", status_code=200)
    async def notify(
        self, channel: FromPath[str], request: Req, payments: NamedDependency[TopupService]
    ) -> Response[bytes]:
        """A payment channel's asynchronous notification: verified, then applied at most once."""
        status, body = await payments.notification(channel, dict(request.headers), await request.body())
        return Response(body, status_code=status, media_type="text/plain")
