"""Where each channel is and with which credential, from the integrations settings section.

The channels are upstreams of ``integrations`` (``CITIZEN_UPSTREAM_UNIONPAY_URL`` etc.): the URL
and budget come from there, and outside production an unset credential derives from the keyring's
``simulator`` key exactly as the simulators derive it.
"""

from __future__ import annotations

from typing import Any

from integrations.credentials import dev_credential
from payments.channels.base import ChannelConfig

__all__ = ["CHANNEL_NAMES", "channel_configs"]

CHANNEL_NAMES: tuple[str, ...] = ("unionpay", "alipay", "wechatpay")


def channel_configs(integrations: Any, simulator_key: bytes | None) -> list[ChannelConfig]:
    """``integrations`` is ``settings.integrations``; channels without a URL are left out."""
    configs = []
    for name in CHANNEL_NAMES:
        upstream = integrations.upstream(name)
        if not upstream.url:
            continue
        if upstream.credential is not None:
            credential = upstream.credential.reveal()
        elif simulator_key is not None:
            credential = dev_credential(simulator_key, name)
        else:
            continue
        configs.append(
            ChannelConfig(
                name=name, base_url=upstream.url, credential=credential, timeout=max(upstream.budget, 3.0)
            )
        )
    return configs
