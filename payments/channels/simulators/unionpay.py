"""A UnionPay-style channel (银联全渠道 style), under ``/unionpay``.

Form-encoded requests and answers, each signed with RSA-SHA256 over the sorted ``k=v&`` string
(field ``signature``): requests by the merchant's key, answers and notifications by the channel's.

- ``POST /gateway/api/frontTransReq.do``: ``txnType=01`` a purchase (``orderId``, ``txnAmt`` fen,
  ``backUrl``), ``txnType=04`` a refund (``origOrderId``, ``orderId`` the refund number),
  ``txnType=31`` a close; ``respCode=00`` on success (a refund: ``05`` still processing),
  refunds deduplicated on their ``orderId``.
- ``POST /gateway/api/queryTrans.do`` (``orderId``, an order's or a refund's): ``origRespCode``
  00 paid (refunded), 05 waiting (processing), 12 closed, 01 failed; ``respCode=34`` no such order.
- ``POST /gateway/api/fileTransfer.do`` (``settleDate`` YYYYMMDD): ``fileContent``, the day's
  statement, lines ``orderId|queryId|kind|txnAmt|time``.
- Notifications: a signed form to ``backUrl``; any HTTP 200 is taken as received.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from litestar import Request, Response, Router, post

from integrations.simulators.faults import UpstreamState
from payments.channels.crypto import channel_secrets, rsa_sign, rsa_verify, sorted_query
from payments.channels.simulators.core import (
    CHINA,
    Book,
    Delivery,
    SimOrder,
    book_of,
    channel_controls,
    find_refund,
    notify,
    statement_lines,
    take_refund,
)

__all__ = ["unionpay_router"]

_FORM = "application/x-www-form-urlencoded"
_STATUS = {"SUCCESS": "00", "WAITING": "05", "CLOSED": "12", "FAILED": "01"}


def unionpay_router(state: UpstreamState, credential: str) -> Router:
    secrets = channel_secrets(credential)

    def answer(fields: dict[str, str]) -> Response[bytes]:
        fields = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", **fields}
        fields["signature"] = rsa_sign(secrets.channel_key, sorted_query(fields, exclude=("signature",)))
        return Response(urllib.parse.urlencode(fields).encode(), media_type=_FORM)

    async def signed_form(request: Request[Any, Any, Any]) -> dict[str, str] | None:
        fields = dict(urllib.parse.parse_qsl((await request.body()).decode(), keep_blank_values=True))
        signature = fields.get("signature", "")
        if fields.get("merId") != secrets.merchant_id or not rsa_verify(
            secrets.merchant_key.public_key(), sorted_query(fields, exclude=("signature",)), signature
        ):
            return None
        return fields

    def build(order: SimOrder) -> Delivery:
        fields = {
            "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "merId": secrets.merchant_id,
            "orderId": order.order_no, "queryId": order.trade_no, "txnAmt": str(order.amount),
            "respCode": "00" if order.status == "SUCCESS" else "01",
            "traceTime": dt.datetime.now(CHINA).strftime("%m%d%H%M%S"),
        }  # fmt: skip
        fields["signature"] = rsa_sign(secrets.channel_key, sorted_query(fields, exclude=("signature",)))
        return Delivery(
            order_no=order.order_no,
            url=order.notify_url,
            headers={"content-type": _FORM},
            body=urllib.parse.urlencode(fields),
        )

    def paid(book: Book, order: SimOrder) -> None:
        notify(book, order, build, lambda r: r.status_code == 200)

    @post("/gateway/api/frontTransReq.do", operation_id="UnionPayTrans", status_code=200)
    async def trans(request: Request[Any, Any, Any]) -> Response[bytes]:
        fields = await signed_form(request)
        if fields is None:
            return answer({"respCode": "11", "respMsg": "signature verification failed"})
        book = book_of(state)
        kind, order_no = fields.get("txnType"), fields.get("orderId", "")
        if kind == "01":
            try:
                amount = int(fields.get("txnAmt", ""))
            except ValueError:
                amount = 0
            if amount <= 0 or not order_no:
                return answer({"respCode": "30", "respMsg": "bad txnAmt or orderId"})
            if order_no in book.orders:
                existing = book.orders[order_no]
                if existing.amount != amount:
                    return answer({"respCode": "12", "respMsg": "duplicate orderId"})
                return answer({"respCode": "00", "orderId": order_no, "queryId": existing.trade_no})
            order = SimOrder(
                order_no=order_no, trade_no=book.new_trade_no("UP"), amount=amount,
                notify_url=fields.get("backUrl", ""), created_at=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            book.orders[order_no] = order
            return answer(
                {
                    "respCode": "00",
                    "orderId": order_no,
                    "queryId": order.trade_no,
                    "tn": "tn" + order.trade_no,
                }
            )
        original = book.orders.get(fields.get("origOrderId", order_no))
        if original is None:
            return answer({"respCode": "34", "respMsg": "original transaction not found"})
        if kind == "31":
            if original.status == "WAITING":
                original.status = "CLOSED"
            return answer({"respCode": "00" if original.status == "CLOSED" else "12", "orderId": order_no})
        if kind == "04":
            asked = fields.get("txnAmt", "")
            status = take_refund(book, original, order_no, int(asked) if asked.isdigit() else None)
            if status is None or status == "CLOSED":
                return answer({"respCode": "12", "respMsg": "refund not allowed", "orderId": order_no})
            code = _STATUS[status if status != "PROCESSING" else "WAITING"]
            return answer({"respCode": code, "orderId": order_no, "txnAmt": asked})
        return answer({"respCode": "40", "respMsg": "unsupported txnType"})

    @post("/gateway/api/queryTrans.do", operation_id="UnionPayQuery", status_code=200)
    async def query(request: Request[Any, Any, Any]) -> Response[bytes]:
        fields = await signed_form(request)
        if fields is None:
            return answer({"respCode": "11", "respMsg": "signature verification failed"})
        book = book_of(state)
        order_no = fields.get("orderId", "")
        refund = find_refund(book, order_no)
        if refund is not None:
            original, status = refund
            return answer(
                {
                    "respCode": "00", "orderId": order_no, "origOrderId": original.order_no, "txnType": "04",
                    "txnAmt": str(original.refunded.get(order_no, 0)),
                    "origRespCode": {"SUCCESS": "00", "PROCESSING": "05"}.get(status, "12"),
                }
            )  # fmt: skip
        order = book.orders.get(order_no)
        if order is None:
            return answer({"respCode": "34", "respMsg": "no such order"})
        return answer(
            {
                "respCode": "00", "orderId": order.order_no, "queryId": order.trade_no,
                "txnAmt": str(order.amount), "origRespCode": _STATUS[order.status],
                "traceTime": f"{order.paid_at.astimezone(CHINA):%Y%m%d%H%M%S}" if order.paid_at else "",
            }
        )  # fmt: skip

    @post("/gateway/api/fileTransfer.do", operation_id="UnionPayStatement", status_code=200)
    async def statement(request: Request[Any, Any, Any]) -> Response[bytes]:
        fields = await signed_form(request)
        if fields is None:
            return answer({"respCode": "11", "respMsg": "signature verification failed"})
        try:
            day = dt.datetime.strptime(fields.get("settleDate", ""), "%Y%m%d").date()  # noqa: DTZ007
        except ValueError:
            return answer({"respCode": "30", "respMsg": "bad settleDate"})
        lines = statement_lines(book_of(state), day)
        content = "".join(
            f"{x.order_no}|{x.trade_no}|{x.kind}|{x.amount}|{x.at.astimezone(CHINA):%Y%m%d%H%M%S}\n"
            for x in lines
        )
        return answer({"respCode": "00", "settleDate": fields["settleDate"], "fileContent": content})

    return Router(
        "/unionpay", route_handlers=[trans, query, statement, channel_controls("unionpay", state, paid)]
    )
