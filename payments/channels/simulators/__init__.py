"""Simulated payment channels, served by the project's simulator process (integrations.simulators).

``CHANNEL_SIMULATORS`` maps each channel's name to its router factory, in the framework's shape
``(UpstreamState, credential) -> Router``; integrations' server registers them with one line.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar import Router

from integrations.simulators.faults import UpstreamState
from payments.channels.simulators.alipay import alipay_router
from payments.channels.simulators.unionpay import unionpay_router
from payments.channels.simulators.wechatpay import wechatpay_router

__all__ = ["CHANNEL_SIMULATORS"]

CHANNEL_SIMULATORS: dict[str, Callable[[UpstreamState, str], Router]] = {
    "unionpay": unionpay_router,
    "alipay": alipay_router,
    "wechatpay": wechatpay_router,
}
