"""The Alipay-style connector (RSA2; see the simulator's docstring). Amounts cross as yuan strings."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from payments.channels.base import (
    ChannelConnector,
    ChannelError,
    ChannelPayment,
    ChannelStart,
    ForgedNotification,
    Notified,
    PaymentStatus,
    RefundStatus,
    StatementEntry,
)
from payments.channels.crypto import channel_secrets, rsa_sign, rsa_verify, sorted_query

__all__ = ["AlipayConnector", "fen_of_yuan"]

_CHINA = dt.timezone(dt.timedelta(hours=8))
_STATUS = {
    "TRADE_SUCCESS": PaymentStatus.PAID,
    "TRADE_FINISHED": PaymentStatus.PAID,
    "WAIT_BUYER_PAY": PaymentStatus.WAITING,
    "TRADE_CLOSED": PaymentStatus.CLOSED,
}
# Business failures (code 40004) are refusals, except a system error: Alipay then does not know.
_UNKNOWN_SUB_CODES = frozenset({"ACQ.SYSTEM_ERROR"})
_REFUSING_CODES = frozenset({"40001", "40002", "40004", "40006"})


def fen_of_yuan(text: str) -> int:
    """``"50.00"`` → 5000; anything that is not a positive amount with at most two decimals raises."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"not a positive amount in yuan with at most two decimals: {text!r}")
    return int(value * 100)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


class AlipayConnector(ChannelConnector):
    name = "alipay"
    success_reply = (200, b"success")
    failure_reply = (200, b"fail")

    async def _call(self, method: str, biz: dict[str, Any], notify_url: str = "") -> dict[str, Any]:
        secrets = channel_secrets(self.config.credential)
        fields = {
            "app_id": secrets.merchant_id, "method": method, "charset": "utf-8", "version": "1.0",
            "timestamp": dt.datetime.now(_CHINA).strftime("%Y-%m-%d %H:%M:%S"),
            "biz_content": json.dumps(biz, separators=(",", ":")), "notify_url": notify_url,
        }  # fmt: skip
        fields["sign"] = rsa_sign(secrets.merchant_key, sorted_query(fields, exclude=("sign", "sign_type")))
        fields["sign_type"] = "RSA2"
        response = await self._post("/gateway.do", data=fields)
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"alipay answered HTTP {response.status_code}")
        text = response.text
        key = f'"{method.replace(".", "_")}_response":'
        start, end = text.find(key), text.rfind(',"sign":"')
        if start < 0 or end < 0:
            raise ChannelError("alipay's answer has no signed response")
        inner = text[start + len(key) : end]
        sign = text[end + len(',"sign":"') :].rstrip('"}')
        if not rsa_verify(secrets.channel_key.public_key(), inner.encode(), sign):
            raise ChannelError("alipay's answer is not signed by alipay")
        answer: dict[str, Any] = json.loads(inner)
        return answer

    async def create(self, order_no: str, amount: int, notify_url: str, subject: str) -> ChannelStart:
        answer = await self._call(
            "alipay.trade.precreate",
            {"out_trade_no": order_no, "total_amount": _yuan(amount), "subject": subject},
            notify_url,
        )
        if answer.get("code") != "10000":
            raise ChannelError(f"alipay refused the order: {answer.get('sub_code')}")
        return ChannelStart(trade_no=None, pay_url=str(answer.get("qr_code", "")))

    async def query(self, order_no: str) -> ChannelPayment:
        answer = await self._call("alipay.trade.query", {"out_trade_no": order_no})
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return ChannelPayment(order_no=order_no, status=PaymentStatus.NOT_FOUND)
        if answer.get("code") != "10000":
            raise ChannelError(f"alipay query failed: {answer.get('sub_code')}")
        try:
            amount = fen_of_yuan(str(answer.get("total_amount", "")))
        except ValueError:
            raise ChannelError("alipay's query answer has no valid total_amount") from None
        return ChannelPayment(
            order_no=order_no,
            status=_STATUS.get(str(answer.get("trade_status")), PaymentStatus.FAILED),
            amount=amount,
            trade_no=answer.get("trade_no"),
        )

    async def close(self, order_no: str) -> bool:
        answer = await self._call("alipay.trade.close", {"out_trade_no": order_no})
        return answer.get("code") == "10000"

    async def refund(self, order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
        answer = await self._call(
            "alipay.trade.refund",
            {"out_trade_no": order_no, "out_request_no": refund_no, "refund_amount": _yuan(amount)},
        )
        code, sub_code = answer.get("code"), answer.get("sub_code")
        if code == "10000":
            return RefundStatus.SUCCEEDED  # Alipay refunds synchronously
        if code in _REFUSING_CODES and sub_code not in _UNKNOWN_SUB_CODES:
            return RefundStatus.REFUSED
        return RefundStatus.PROCESSING  # 20000 and system errors: Alipay asks us to query

    async def refund_query(self, order_no: str, refund_no: str) -> RefundStatus:
        answer = await self._call(
            "alipay.trade.fastpay.refund.query", {"out_trade_no": order_no, "out_request_no": refund_no}
        )
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return RefundStatus.NOT_FOUND
        if answer.get("code") != "10000":
            raise ChannelError(f"alipay refund query failed: {answer.get('sub_code')}")
        # Alipay's rule: refund data in the answer (refund_status empty or REFUND_SUCCESS) means
        # refunded; no data means it never succeeded, and may be sent again under the same number.
        if answer.get("out_request_no") != refund_no or not answer.get("refund_amount"):
            return RefundStatus.NOT_FOUND
        if answer.get("refund_status") in (None, "", "REFUND_SUCCESS"):
            return RefundStatus.SUCCEEDED
        return RefundStatus.PROCESSING

    async def statement(self, day: dt.date) -> list[StatementEntry]:
        answer = await self._call("alipay.data.bill.download", {"bill_date": day.isoformat()})
        if answer.get("code") != "10000":
            raise ChannelError(f"alipay bill failed: {answer.get('sub_code')}")
        entries = []
        for line in str(answer.get("bill", "")).splitlines():
            order_no, trade_no, kind, amount, at = line.split(",")
            moment = dt.datetime.strptime(at, "%Y-%m-%d %H:%M:%S").replace(tzinfo=_CHINA)
            entries.append(
                StatementEntry(
                    order_no=order_no, trade_no=trade_no, kind=kind, amount=fen_of_yuan(amount), at=moment
                )
            )
        return entries

    def verify_notification(self, headers: Mapping[str, str], body: bytes) -> Notified:
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        secrets = channel_secrets(self.config.credential)
        if fields.get("sign_type") != "RSA2" or not rsa_verify(
            secrets.channel_key.public_key(),
            sorted_query(fields, exclude=("sign", "sign_type")),
            fields.get("sign", ""),
        ):
            raise ForgedNotification("alipay: the signature does not verify")
        if fields.get("app_id") != secrets.merchant_id:
            raise ForgedNotification("alipay: the notification is for another app")
        try:
            return Notified(
                order_no=fields["out_trade_no"],
                trade_no=fields["trade_no"],
                amount=fen_of_yuan(fields["total_amount"]),
                status=_STATUS.get(fields.get("trade_status", ""), PaymentStatus.FAILED),
            )
        except (KeyError, ValueError) as exc:
            raise ForgedNotification(f"alipay: the notification is incomplete ({exc})") from None
