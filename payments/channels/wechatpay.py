"""The WeChat Pay API v3-style connector (HMAC signatures, AES-GCM resources; see the simulator)."""

from __future__ import annotations

import datetime as dt
import json
import secrets as random_tokens
import time
from collections.abc import Mapping
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
from payments.channels.crypto import aes_gcm_decrypt, channel_secrets, hmac_b64

__all__ = ["WechatPayConnector"]

MAX_SKEW = 300
_STATUS = {
    "SUCCESS": PaymentStatus.PAID,
    "NOTPAY": PaymentStatus.WAITING,
    "USERPAYING": PaymentStatus.WAITING,
    "CLOSED": PaymentStatus.CLOSED,
    "PAYERROR": PaymentStatus.FAILED,
}
# A refund's ``status``. ABNORMAL (the citizen's account cannot take it, it waits for the
# merchant's manual handling) is not a refusal: the channel still holds it, so we keep asking.
_REFUND = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PROCESSING,
    "ABNORMAL": RefundStatus.PROCESSING,
    "CLOSED": RefundStatus.REFUSED,
}


class WechatPayConnector(ChannelConnector):
    name = "wechatpay"
    success_reply = (204, b"")
    failure_reply = (500, b'{"code":"FAIL","message":"not processed"}')

    def _authorization(self, method: str, target: str, body: bytes) -> str:
        secrets = channel_secrets(self.config.credential)
        timestamp, nonce = str(int(time.time())), random_tokens.token_hex(16)
        message = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = hmac_b64(secrets.hmac_key, message)
        return (
            f'WECHATPAY2-SHA256-HMAC mchid="{secrets.merchant_id}",nonce_str="{nonce}",'
            f'timestamp="{timestamp}",signature="{signature}"'
        )

    def _check_signed(self, headers: Mapping[str, str], body: bytes) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get("wechatpay-timestamp", "")
        try:
            if abs(time.time() - int(timestamp)) > MAX_SKEW:
                return False
        except ValueError:
            return False
        message = f"{timestamp}\n{lowered.get('wechatpay-nonce', '')}\n".encode() + body + b"\n"
        expected = hmac_b64(channel_secrets(self.config.credential).hmac_key, message)
        return random_tokens.compare_digest(expected, lowered.get("wechatpay-signature", ""))

    async def _call(self, method: str, target: str, payload: Any = None) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        signed_target = (
            httpx.URL(self.config.base_url).path.rstrip("/") + target
        )  # the path as the server sees it
        headers = {
            "Authorization": self._authorization(method, signed_target, body),
            "Accept": "application/json",
        }
        if method == "GET":
            response = await self._get(target, headers=headers)
        else:
            headers["Content-Type"] = "application/json"
            response = await self._post(target, content=body, headers=headers)
        if response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR:
            raise ChannelError(f"wechatpay answered HTTP {response.status_code}")
        if not self._check_signed(response.headers, response.content):
            raise ChannelError("wechatpay's answer is not signed by wechatpay")
        return response

    async def create(self, order_no: str, amount: int, notify_url: str, subject: str) -> ChannelStart:
        secrets = channel_secrets(self.config.credential)
        response = await self._call(
            "POST",
            "/v3/pay/transactions/native",
            {
                "mchid": secrets.merchant_id, "appid": "wxcitizen", "description": subject,
                "out_trade_no": order_no, "notify_url": notify_url,
                "amount": {"total": amount, "currency": "CNY"},
            },
        )  # fmt: skip
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"wechatpay refused the order: {response.text[:200]}")
        return ChannelStart(trade_no=None, pay_url=str(response.json().get("code_url", "")))

    async def query(self, order_no: str) -> ChannelPayment:
        secrets = channel_secrets(self.config.credential)
        response = await self._call(
            "GET", f"/v3/pay/transactions/out-trade-no/{order_no}?mchid={secrets.merchant_id}"
        )
        if response.status_code == httpx.codes.NOT_FOUND:
            return ChannelPayment(order_no=order_no, status=PaymentStatus.NOT_FOUND)
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"wechatpay query failed: HTTP {response.status_code}")
        data = response.json()
        return ChannelPayment(
            order_no=order_no,
            status=_STATUS.get(str(data.get("trade_state")), PaymentStatus.FAILED),
            amount=int(data["amount"]["total"]),
            trade_no=data.get("transaction_id"),
        )

    async def close(self, order_no: str) -> bool:
        secrets = channel_secrets(self.config.credential)
        response = await self._call(
            "POST", f"/v3/pay/transactions/out-trade-no/{order_no}/close", {"mchid": secrets.merchant_id}
        )
        return response.status_code == httpx.codes.NO_CONTENT

    async def refund(self, order_no: str, refund_no: str, amount: int, total: int) -> RefundStatus:
        response = await self._call(
            "POST",
            "/v3/refund/domestic/refunds",
            {
                "out_trade_no": order_no, "out_refund_no": refund_no,
                "amount": {"refund": amount, "total": total, "currency": "CNY"},
            },
        )  # fmt: skip
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            raise ChannelError("wechatpay: refund rate-limited; ask again")
        if httpx.codes.BAD_REQUEST <= response.status_code < httpx.codes.INTERNAL_SERVER_ERROR:
            return RefundStatus.REFUSED  # signed by wechatpay: this request was not accepted
        return self._refund_status(response)

    async def refund_query(self, order_no: str, refund_no: str) -> RefundStatus:
        response = await self._call("GET", f"/v3/refund/domestic/refunds/{refund_no}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return RefundStatus.NOT_FOUND
        return self._refund_status(response)

    @staticmethod
    def _refund_status(response: httpx.Response) -> RefundStatus:
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"wechatpay refund: HTTP {response.status_code}")
        try:
            return _REFUND[str(response.json().get("status"))]
        except (ValueError, KeyError, AttributeError):
            raise ChannelError("wechatpay refund: no known status in the answer") from None

    async def statement(self, day: dt.date) -> list[StatementEntry]:
        response = await self._call("GET", f"/v3/bill/tradebill?bill_date={day.isoformat()}")
        if response.status_code != httpx.codes.OK:
            raise ChannelError(f"wechatpay bill failed: HTTP {response.status_code}")
        entries = []
        for line in response.text.splitlines()[1:]:
            at, order_no, trade_no, kind, amount = (value.lstrip("`") for value in line.split(","))
            moment = dt.datetime.fromisoformat(at).replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))
            entries.append(
                StatementEntry(order_no=order_no, trade_no=trade_no, kind=kind, amount=int(amount), at=moment)
            )
        return entries

    def verify_notification(self, headers: Mapping[str, str], body: bytes) -> Notified:
        if not self._check_signed(headers, body):
            raise ForgedNotification("wechatpay: the signature does not verify (or the timestamp is stale)")
        try:
            resource = json.loads(body)["resource"]
            plain = aes_gcm_decrypt(
                channel_secrets(self.config.credential).api_v3_key,
                str(resource["nonce"]),
                str(resource.get("associated_data", "")),
                str(resource["ciphertext"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ForgedNotification("wechatpay: the notification has no readable resource") from None
        if plain is None:
            raise ForgedNotification("wechatpay: the resource does not decrypt under our API v3 key")
        try:
            data = json.loads(plain)
            if data.get("mchid") != channel_secrets(self.config.credential).merchant_id:
                raise ForgedNotification("wechatpay: the notification is for another merchant")
            return Notified(
                order_no=str(data["out_trade_no"]),
                trade_no=str(data["transaction_id"]),
                amount=int(data["amount"]["total"]),
                status=_STATUS.get(str(data.get("trade_state")), PaymentStatus.FAILED),
            )
        except (ValueError, KeyError, TypeError):
            raise ForgedNotification("wechatpay: the resource is incomplete") from None
