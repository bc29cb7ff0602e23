"""Payment channels for top-ups: connectors (verified both ways) and, under ``simulators``, the
development channels in the styles of UnionPay, Alipay and WeChat Pay."""

from __future__ import annotations

import httpx

from payments.channels.alipay import AlipayConnector
from payments.channels.base import (
    ChannelConfig,
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
from payments.channels.unionpay import UnionPayConnector
from payments.channels.wechatpay import WechatPayConnector

__all__ = [
    "CHANNELS",
    "ChannelConfig",
    "ChannelConnector",
    "ChannelError",
    "ChannelPayment",
    "ChannelStart",
    "ForgedNotification",
    "Notified",
    "PaymentStatus",
    "RefundStatus",
    "StatementEntry",
    "build_connectors",
]

CHANNELS: dict[str, type[ChannelConnector]] = {
    "unionpay": UnionPayConnector,
    "alipay": AlipayConnector,
    "wechatpay": WechatPayConnector,
}


def build_connectors(configs: list[ChannelConfig], client: httpx.AsyncClient) -> dict[str, ChannelConnector]:
    return {c.name: CHANNELS[c.name](c, client) for c in configs if c.name in CHANNELS and c.base_url}
