"""A closed card's e-purse balance goes back through payments (``payments.topup.refunds``).

:func:`payments_refunder` adapts ``refund_card_balance(service, card_id, actor)``: the service is
payments' :class:`~payments.topup.service.TopupService`, the ``payments`` named dependency that
payments' wiring provides. It runs after the close has committed (it calls the channels over HTTP),
so it never holds the card's transaction open; what it could not refund is reported, not raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from card.audit import Actor
from card.lifecycle.views import BalanceRefund, RefundLine

__all__ = ["BalanceRefunder", "payments_refunder"]

BalanceRefunder = Callable[[uuid.UUID, Actor], Awaitable[BalanceRefund]]


def payments_refunder(topups: Any) -> BalanceRefunder:
    """``topups``: payments' ``TopupService``."""
    from payments.topup.refunds import refund_card_balance
    from payments.topup.service import Actor as PaymentsActor

    async def refund(card_id: uuid.UUID, actor: Actor) -> BalanceRefund:
        who = PaymentsActor(
            kind=actor.kind, id=actor.id, client_address=actor.client_address, request_id=actor.request_id
        )
        result = await refund_card_balance(topups, card_id, who)
        lines = [
            RefundLine(refund_no=r.refund_no, order_id=r.order_id, amount=r.amount, state=r.state)
            for r in result.refunds
        ]
        return BalanceRefund(
            balance=result.balance,
            refunded=sum(r.amount for r in lines if r.state == "succeeded"),
            unrefunded=result.unrefunded,
            refunds=lines,
        )

    return refund
