"""The UnionPay-style connector (RSA-SHA256 over sorted ``k=v&``; see the simulator's docstring)."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Mapping

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

__all__ = ["UnionPayConnector"]

_CHINA = dt.timezone(dt.timedelta(hours=8))
_STATUS = {"00": PaymentStatus.PAID, "05": PaymentStatus.WAITING, "12": PaymentStatus.CLOSED}
# UnionPay's "timed out / state unknown / accepted, query later": not an answer either way.
_PENDING_CODES = frozenset({"03", "04", "05"})


def _refund_status(code: str) -> RefundStatus:
    if code == "00":
        return RefundStatus.SUCCEEDED
    if code in _PENDING_CODES:
        return RefundStatus.PROCESSING
    return RefundStatus.REFUSED


class UnionPayConnector(ChannelConnector):
    name = "unionpay"
    success_reply = (200, b"ok")
    failure_reply = (500, b"fail")

    def _signed(self, fields: dict[str, str]) -> dict[str, str]:
        secrets = channel_secrets(self.config.credential)
        base = {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "merId": secrets.merchant_id}
        fields = {**base, **fields}
        fields["signature"] = rsa_sign(secrets.merchant_key, sorted_query(fields, exclude=("signature",)))
        return fields

    def _verified(self, body: bytes) -> dict[str, str]:
        """The channel's signed form (an answer or a notification), or ``None`` if forged."""
        fields = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        public = channel_secrets(self.config.credential).channel_key.public_key()
        if not rsa_verify(public, sorted_query(fields, exclude=("signature",)), fields.get("signature", "")):
            raise ForgedNotification(f"{self.name}: the signature does not verify")
        return fields

    async def _call(self, path: str, fields: dict[str, str]) -> dict[str, str]:
        response = await self._post(path, data=self._signed(fields))
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"unionpay answered HTTP {response.status_code}")
        try:
            return self._verified(response.content)
        except ForgedNotification:
            raise ChannelError("unionpay's answer is not signed by unionpay") from None

    async def create(self, order_no: str, amount: int, notify_url: str, subject: str) -> ChannelStart:
        answer = await self._call(
            "/gateway/api/frontTransReq.do",
            {
                "txnType": "01", "orderId": order_no, "txnAmt": str(amount), "currencyCode": "156",
                "txnTime": dt.datetime.now(_CHINA).strftime("%Y%m%d%H%M%S"), "backUrl": notify_url,
                "orderDesc": subject,
            },
        )  # fmt: skip
        if answer.get("respCode") != "00":
            raise ChannelError(
                f"unionpay refused the order: {answer.get('respCode')} {answer.get('respMsg', '')}"
            )
        return ChannelStart(
            trade_no=answer.get("queryId"), pay_url=f"upwallet://pay?tn={answer.get('tn', '')}"
        )

    async def query(self, order_no: str) -> ChannelPayment:
        answer = await self._call("/gateway/api/queryTrans.do", {"txnType": "00", "orderId": order_no})
        if answer.get("respCode") == "34":
            return ChannelPayment(order_no=order_no, status=PaymentStatus.NOT_FOUND)
        if answer.get("respCode") != "00":
            raise ChannelError(f"unionpay query failed: {answer.get('respCode')}")
        return ChannelPayment(
            order_no=order_no,
            status=_STATUS.get(answer.get("origRespCode", ""), PaymentStatus.FAILED),
            amount=int(answer["txnAmt"]) if answer.get("txnAmt", "").isdigit() else None,
            trade_no=answer.get("queryId"),
        )

    async def close(self, order_no: str) -> bool:
        answer = await self._call(
            "/gateway/api/frontTransReq.do",
            {"txnType": "31", "orderId": f"C{order_no}", "origOrderId": order_no},
        )
        return answer.get("respCode") == "00"

    async def refund(self, order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
        answer = await self._call(
            "/gateway/api/frontTransReq.do",
            {"txnType": "04", "orderId": refund_no, "origOrderId": order_no, "txnAmt": str(amount)},
        )
        return _refund_status(answer.get("respCode", ""))

    async def refund_query(self, order_no: str, refund_no: str) -> RefundStatus:
        answer = await self._call("/gateway/api/queryTrans.do", {"txnType": "00", "orderId": refund_no})
        if answer.get("respCode") == "34":
            return RefundStatus.NOT_FOUND
        if answer.get("respCode") != "00":
            raise ChannelError(f"unionpay refund query failed: {answer.get('respCode')}")
        return _refund_status(answer.get("origRespCode", ""))

    async def statement(self, day: dt.date) -> list[StatementEntry]:
        answer = await self._call("/gateway/api/fileTransfer.do", {"settleDate": f"{day:%Y%m%d}"})
        if answer.get("respCode") != "00":
            raise ChannelError(f"unionpay statement failed: {answer.get('respCode')}")
        entries = []
        for line in answer.get("fileContent", "").splitlines():
            order_no, trade_no, kind, amount, at = line.split("|")
            moment = dt.datetime.strptime(at, "%Y%m%d%H%M%S").replace(tzinfo=_CHINA)
            entries.append(
                StatementEntry(order_no=order_no, trade_no=trade_no, kind=kind, amount=int(amount), at=moment)
            )
        return entries

    def verify_notification(self, headers: Mapping[str, str], body: bytes) -> Notified:
        fields = self._verified(body)
        if fields.get("merId") != channel_secrets(self.config.credential).merchant_id:
            raise ForgedNotification("unionpay: the notification is for another merchant")
        try:
            amount = int(fields["txnAmt"])
            return Notified(
                order_no=fields["orderId"],
                trade_no=fields["queryId"],
                amount=amount,
                status=PaymentStatus.PAID if fields.get("respCode") == "00" else PaymentStatus.FAILED,
            )
        except (KeyError, ValueError):
            raise ForgedNotification("unionpay: the notification lacks orderId, queryId or txnAmt") from None
