"""An Alipay-style channel (RSA2), under ``/alipay``.

``POST /gateway.do``, a form with ``app_id``, ``method``, ``charset``, ``sign_type=RSA2``,
``timestamp``, ``version``, ``biz_content`` (JSON) and ``sign``: RSA-SHA256 by the merchant over
the sorted ``k=v&`` of every parameter except ``sign`` and ``sign_type``. Amounts are yuan
strings (``"50.00"``). The answer is ``{"<method>_response": {...}, "sign": "..."}``, signed by
the channel over the exact text of the ``*_response`` member. Methods:
``alipay.trade.precreate`` (``out_trade_no``, ``total_amount``, ``notify_url``),
``alipay.trade.query`` (``trade_status`` WAIT_BUYER_PAY / TRADE_SUCCESS / TRADE_CLOSED),
``alipay.trade.close``, ``alipay.trade.refund`` (``out_request_no``, ``refund_amount``; a refund
still processing answers ``ACQ.SYSTEM_ERROR``), ``alipay.trade.fastpay.refund.query``
(``out_request_no``: the refund's data once refunded, none otherwise) and
``alipay.data.bill.download`` (``bill_date``: ``bill``, CSV ``out_trade_no,trade_no,kind,amount,time``).
Notifications: a form signed by the channel the same way; only the body ``success`` stops retries.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets as random_tokens
import urllib.parse
from decimal import Decimal, InvalidOperation
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
    notify,
    statement_lines,
    take_refund,
)

__all__ = ["alipay_router", "yuan"]

_STATUS = {
    "SUCCESS": "TRADE_SUCCESS",
    "WAITING": "WAIT_BUYER_PAY",
    "CLOSED": "TRADE_CLOSED",
    "FAILED": "TRADE_CLOSED",
}


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _fen(text: str) -> int | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value != value.quantize(Decimal("0.01")) or value <= 0:
        return None
    return int(value * 100)


def alipay_router(state: UpstreamState, credential: str) -> Router:
    secrets = channel_secrets(credential)

    def answer(method: str, inner: dict[str, Any]) -> Response[bytes]:
        text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
        sign = rsa_sign(secrets.channel_key, text.encode())
        key = method.replace(".", "_") + "_response"
        return Response(f'{{"{key}":{text},"sign":"{sign}"}}'.encode(), media_type="application/json")

    def fail(method: str, sub_code: str, message: str) -> Response[bytes]:
        return answer(
            method, {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": message}
        )

    def build(order: SimOrder) -> Delivery:
        fields = {
            "notify_time": dt.datetime.now(CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync", "notify_id": random_tokens.token_hex(16),
            "app_id": secrets.merchant_id, "charset": "utf-8", "version": "1.0",
            "out_trade_no": order.order_no, "trade_no": order.trade_no, "total_amount": yuan(order.amount),
            "trade_status": _STATUS[order.status],
            "gmt_payment": f"{order.paid_at.astimezone(CHINA):%Y-%m-%d %H:%M:%S}" if order.paid_at else "",
        }  # fmt: skip
        fields["sign"] = rsa_sign(secrets.channel_key, sorted_query(fields, exclude=("sign", "sign_type")))
        fields["sign_type"] = "RSA2"
        return Delivery(
            order_no=order.order_no,
            url=order.notify_url,
            headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
            body=urllib.parse.urlencode(fields),
        )

    def paid(book: Book, order: SimOrder) -> None:
        notify(book, order, build, lambda r: r.text == "success")

    @post("/gateway.do", operation_id="AlipayGateway", status_code=200)
    async def gateway(request: Request[Any, Any, Any]) -> Response[bytes]:
        fields = dict(urllib.parse.parse_qsl((await request.body()).decode(), keep_blank_values=True))
        method = fields.get("method", "alipay.unknown")
        if fields.get("app_id") != secrets.merchant_id or not rsa_verify(
            secrets.merchant_key.public_key(),
            sorted_query(fields, exclude=("sign", "sign_type")),
            fields.get("sign", ""),
        ):
            return answer(
                method, {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}
            )
        try:
            biz = json.loads(fields.get("biz_content", "{}"))
        except ValueError:
            return fail(method, "ACQ.INVALID_PARAMETER", "biz_content is not JSON")
        book = book_of(state)
        if method == "alipay.data.bill.download":
            try:
                day = dt.date.fromisoformat(str(biz.get("bill_date")))
            except ValueError:
                return fail(method, "ACQ.INVALID_PARAMETER", "bill_date")
            stamp = "%Y-%m-%d %H:%M:%S"
            bill = "".join(
                f"{x.order_no},{x.trade_no},{x.kind},{yuan(x.amount)},{x.at.astimezone(CHINA):{stamp}}\n"
                for x in statement_lines(book, day)
            )
            return answer(method, {"code": "10000", "msg": "Success", "bill": bill})
        order_no = str(biz.get("out_trade_no", ""))
        order = book.orders.get(order_no)
        if method == "alipay.trade.precreate":
            amount = _fen(str(biz.get("total_amount", "")))
            if amount is None or not order_no:
                return fail(method, "ACQ.INVALID_PARAMETER", "total_amount or out_trade_no")
            if order is None:
                order = SimOrder(
                    order_no=order_no, trade_no=book.new_trade_no("AP"), amount=amount,
                    notify_url=fields.get("notify_url", ""), created_at=dt.datetime.now(dt.UTC),
                )  # fmt: skip
                book.orders[order_no] = order
            elif order.amount != amount:
                return fail(method, "ACQ.CONTEXT_INCONSISTENT", "out_trade_no reused with another amount")
            return answer(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": order_no,
                    "qr_code": f"https://qr.alipay.sim/{order.trade_no}",
                },
            )
        if order is None:
            return fail(method, "ACQ.TRADE_NOT_EXIST", "no such trade")
        if method == "alipay.trade.query":
            return answer(
                method,
                {
                    "code": "10000", "msg": "Success", "out_trade_no": order_no, "trade_no": order.trade_no,
                    "trade_status": _STATUS[order.status], "total_amount": yuan(order.amount),
                },
            )  # fmt: skip
        if method == "alipay.trade.close":
            if order.status == "WAITING":
                order.status = "CLOSED"
            if order.status != "CLOSED":
                return fail(method, "ACQ.TRADE_STATUS_ERROR", "the trade is not waiting")
            return answer(method, {"code": "10000", "msg": "Success", "out_trade_no": order_no})
        if method == "alipay.trade.refund":
            amount = _fen(str(biz.get("refund_amount", "")))
            refund_no = str(biz.get("out_request_no", ""))
            status = take_refund(book, order, refund_no, amount)
            if status is None or status == "CLOSED":
                return fail(method, "ACQ.TRADE_STATUS_ERROR", "refund not allowed")
            if status == "PROCESSING":
                return answer(
                    method,
                    {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "ACQ.SYSTEM_ERROR"},
                )
            return answer(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": order_no,
                    "refund_fee": yuan(amount or 0),
                },
            )
        if method == "alipay.trade.fastpay.refund.query":
            refund_no = str(biz.get("out_request_no", ""))
            if order.refund_states.get(refund_no) != "SUCCESS":
                return answer(method, {"code": "10000", "msg": "Success", "out_trade_no": order_no})
            return answer(
                method,
                {
                    "code": "10000", "msg": "Success", "out_trade_no": order_no, "out_request_no": refund_no,
                    "refund_amount": yuan(order.refunded[refund_no]), "refund_status": "REFUND_SUCCESS",
                },
            )  # fmt: skip
        return fail(method, "ACQ.METHOD_NOT_SUPPORTED", method)

    return Router("/alipay", route_handlers=[gateway, channel_controls("alipay", state, paid)])
