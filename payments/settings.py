"""The ``payments`` settings section (held by ``backend/settings.py``; variables ``CITIZEN_PAYMENTS_*``)."""

from __future__ import annotations

import msgspec

__all__ = ["PaymentsSettings"]


class PaymentsSettings(msgspec.Struct, frozen=True, kw_only=True):
    topup_min: int = 100  # fen per top-up order (1 yuan)
    topup_max: int = 100_000  # fen per top-up order (1,000 yuan)
    order_ttl: int = 900  # seconds an unpaid order lives before it is closed
    query_after: int = 60  # seconds without a notification before the sweep asks the channel
    fee_bps: int = 50  # the platform's clearing fee on operators' fares, basis points (0.5 %)
    notify_base_url: str = ""  # where channels send notifications (default: the public URL)
    sweep_interval: int = 60  # seconds between the app's top-up sweeps (0: no periodic sweep)
