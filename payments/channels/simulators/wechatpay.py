"""A WeChat Pay API v3-style channel, under ``/wechatpay``.

JSON bodies, amounts in fen. Requests carry ``Authorization: WECHATPAY2-SHA256-HMAC mchid="…",
nonce_str="…",timestamp="…",signature="…"``, an HMAC-SHA256 (base64) over
``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``. Answers and notifications carry
``Wechatpay-Timestamp``, ``Wechatpay-Nonce`` and ``Wechatpay-Signature`` over
``TIMESTAMP\\nNONCE\\nBODY\\n``. A notification's ``resource`` is AEAD_AES_256_GCM under the API v3
key (associated data ``transaction``); any 2xx answer stops the retries.

- ``POST /v3/pay/transactions/native`` ``{mchid, out_trade_no, description, notify_url,
  amount: {total}}`` → ``{code_url}``;
- ``GET /v3/pay/transactions/out-trade-no/{no}`` → ``{trade_state: NOTPAY|SUCCESS|CLOSED|PAYERROR,
  transaction_id, amount: {total}}``, 404 ``ORDER_NOT_EXIST``;
- ``POST /v3/pay/transactions/out-trade-no/{no}/close`` → 204;
- ``POST /v3/refund/domestic/refunds`` ``{out_trade_no, out_refund_no, amount: {refund, total}}``
  → ``{status: SUCCESS|PROCESSING|CLOSED}``, deduplicated on ``out_refund_no``;
- ``GET /v3/refund/domestic/refunds/{out_refund_no}`` → the same, 404 ``RESOURCE_NOT_EXISTS``;
- ``GET /v3/bill/tradebill?bill_date=YYYY-MM-DD`` → CSV, each value prefixed with a backquote.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets as random_tokens
import time
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, FromQuery

from integrations.simulators.faults import UpstreamState
from payments.channels.crypto import aes_gcm_encrypt, channel_secrets, hmac_b64
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

__all__ = ["parse_authorization", "wechatpay_router"]

_STATE = {"SUCCESS": "SUCCESS", "WAITING": "NOTPAY", "CLOSED": "CLOSED", "FAILED": "PAYERROR"}
MAX_SKEW = 300


def parse_authorization(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme != "WECHATPAY2-SHA256-HMAC":
        return {}
    parts = {}
    for item in rest.split(","):
        key, _, value = item.strip().partition("=")
        parts[key] = value.strip('"')
    return parts


def wechatpay_router(state: UpstreamState, credential: str) -> Router:
    secrets = channel_secrets(credential)

    def signed_headers(body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), random_tokens.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": hmac_b64(secrets.hmac_key, message),
            "Wechatpay-Serial": "SIM-HMAC-1",
        }

    def answer(status: int, payload: Any, media_type: str = "application/json") -> Response[bytes]:
        body = (
            b""
            if payload is None
            else payload
            if isinstance(payload, bytes)
            else json.dumps(payload).encode()
        )
        return Response(body, status_code=status, media_type=media_type, headers=signed_headers(body))

    async def authorised(request: Request[Any, Any, Any]) -> bytes | None:
        parts = parse_authorization(request.headers.get("authorization", ""))
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            fresh = abs(time.time() - int(parts.get("timestamp", "0"))) <= MAX_SKEW
        except ValueError:
            fresh = False
        message = f"{request.method}\n{target}\n{parts.get('timestamp')}\n{parts.get('nonce_str')}\n".encode()
        expected = hmac_b64(secrets.hmac_key, message + body + b"\n")
        if not fresh or parts.get("mchid") != secrets.merchant_id or parts.get("signature") != expected:
            return None
        return body

    def denied() -> Response[bytes]:
        return answer(401, {"code": "SIGN_ERROR", "message": "signature verification failed"})

    def build(order: SimOrder) -> Delivery:
        resource = {
            "mchid": secrets.merchant_id, "out_trade_no": order.order_no, "transaction_id": order.trade_no,
            "trade_state": _STATE[order.status], "amount": {"total": order.amount, "currency": "CNY"},
            "success_time": order.paid_at.astimezone(CHINA).isoformat() if order.paid_at else None,
        }  # fmt: skip
        nonce = random_tokens.token_hex(6)
        body = json.dumps(
            {
                "id": random_tokens.token_hex(16),
                "create_time": dt.datetime.now(CHINA).isoformat(),
                "event_type": "TRANSACTION.SUCCESS" if order.status == "SUCCESS" else "TRANSACTION.PAYERROR",
                "resource_type": "encrypt-resource",
                "resource": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": aes_gcm_encrypt(
                        secrets.api_v3_key, nonce, "transaction", json.dumps(resource).encode()
                    ),
                    "associated_data": "transaction",
                    "nonce": nonce,
                },
            }
        ).encode()
        headers = {"content-type": "application/json", **signed_headers(body)}
        return Delivery(order_no=order.order_no, url=order.notify_url, headers=headers, body=body.decode())

    def paid(book: Book, order: SimOrder) -> None:
        notify(book, order, build, lambda r: r.is_success)

    @post("/v3/pay/transactions/native", operation_id="WechatNative", status_code=200)
    async def native(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await authorised(request)
        if body is None:
            return denied()
        try:
            data = json.loads(body)
            order_no, amount = str(data["out_trade_no"]), int(data["amount"]["total"])
        except (ValueError, KeyError, TypeError):
            return answer(
                400, {"code": "PARAM_ERROR", "message": "out_trade_no and amount.total are required"}
            )
        if amount <= 0 or not order_no:
            return answer(400, {"code": "PARAM_ERROR", "message": "amount.total must be positive"})
        book = book_of(state)
        order = book.orders.get(order_no)
        if order is None:
            order = SimOrder(
                order_no=order_no, trade_no=book.new_trade_no("42"), amount=amount,
                notify_url=str(data.get("notify_url", "")), created_at=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            book.orders[order_no] = order
        elif order.amount != amount:
            return answer(
                400, {"code": "INVALID_REQUEST", "message": "out_trade_no reused with another amount"}
            )
        return answer(200, {"code_url": f"weixin://wxpay/sim/{order.trade_no}"})

    @get("/v3/pay/transactions/out-trade-no/{order_no:str}", operation_id="WechatQuery")
    async def query(order_no: FromPath[str], request: Request[Any, Any, Any]) -> Response[bytes]:
        if await authorised(request) is None:
            return denied()
        order = book_of(state).orders.get(order_no)
        if order is None:
            return answer(404, {"code": "ORDER_NOT_EXIST", "message": "no such order"})
        return answer(
            200,
            {
                "out_trade_no": order.order_no, "transaction_id": order.trade_no,
                "trade_state": _STATE[order.status], "amount": {"total": order.amount, "currency": "CNY"},
            },
        )  # fmt: skip

    @post(
        "/v3/pay/transactions/out-trade-no/{order_no:str}/close", operation_id="WechatClose", status_code=200
    )
    async def close(order_no: FromPath[str], request: Request[Any, Any, Any]) -> Response[bytes]:
        if await authorised(request) is None:
            return denied()
        order = book_of(state).orders.get(order_no)
        if order is None:
            return answer(404, {"code": "ORDER_NOT_EXIST", "message": "no such order"})
        if order.status == "WAITING":
            order.status = "CLOSED"
        if order.status != "CLOSED":
            return answer(400, {"code": "ORDER_PAID", "message": "the order is not waiting"})
        return answer(204, None)

    @post("/v3/refund/domestic/refunds", operation_id="WechatRefund", status_code=200)
    async def refund(request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await authorised(request)
        if body is None:
            return denied()
        try:
            data = json.loads(body)
            order_no, refund_no = str(data["out_trade_no"]), str(data["out_refund_no"])
            amount = int(data["amount"]["refund"])
        except (ValueError, KeyError, TypeError):
            return answer(
                400, {"code": "PARAM_ERROR", "message": "out_trade_no, out_refund_no, amount.refund"}
            )
        order = book_of(state).orders.get(order_no)
        if order is None:
            return answer(404, {"code": "ORDER_NOT_EXIST", "message": "no such order"})
        status = take_refund(book_of(state), order, refund_no, amount)
        if status is None:
            return answer(400, {"code": "INVALID_REQUEST", "message": "refund not allowed"})
        return answer(200, {"out_refund_no": refund_no, "status": status, "amount": {"refund": amount}})

    @get("/v3/refund/domestic/refunds/{refund_no:str}", operation_id="WechatRefundQuery")
    async def refund_query(refund_no: FromPath[str], request: Request[Any, Any, Any]) -> Response[bytes]:
        if await authorised(request) is None:
            return denied()
        found = find_refund(book_of(state), refund_no)
        if found is None:
            return answer(404, {"code": "RESOURCE_NOT_EXISTS", "message": "no such refund"})
        order, status = found
        return answer(
            200,
            {
                "out_refund_no": refund_no, "out_trade_no": order.order_no, "status": status,
                "amount": {"refund": order.refunded.get(refund_no, 0), "total": order.amount},
            },
        )  # fmt: skip

    @get("/v3/bill/tradebill", operation_id="WechatBill")
    async def bill(bill_date: FromQuery[str], request: Request[Any, Any, Any]) -> Response[bytes]:
        if await authorised(request) is None:
            return denied()
        try:
            day = dt.date.fromisoformat(bill_date)
        except ValueError:
            return answer(400, {"code": "PARAM_ERROR", "message": "bill_date"})
        rows = ["交易时间,商户订单号,微信订单号,类型,金额(分)"]
        rows += [
            f"`{x.at.astimezone(CHINA):%Y-%m-%d %H:%M:%S},`{x.order_no},`{x.trade_no},`{x.kind},`{x.amount}"
            for x in statement_lines(book_of(state), day)
        ]
        return answer(200, ("\n".join(rows) + "\n").encode(), media_type="text/csv")

    return Router(
        "/wechatpay",
        route_handlers=[
            native,
            query,
            close,
            refund,
            refund_query,
            bill,
            channel_controls("wechatpay", state, paid),
        ],
    )
