"""The "top-up credited" message in the citizen's in-app inbox (``integrations.messages``).

Written inside the transaction that moves the order to ``credited``: the message exists exactly
when the money is in the e-purse. The order id is the dedupe key, so however many paths reach
``credited`` (notification, query, sweep, kiosk load), the citizen gets one message per order.
"""

from __future__ import annotations

from typing import Any

from payments._db import Connection

__all__ = ["KIND", "notify_credited_txn"]

KIND = "payments.topup_credited"
_TITLE = "充值到账"
# zh-CN, as the app shows them; {amount} in yuan.
_BODY = {
    False: "您的市民卡电子钱包充值 {amount} 元已到账（订单号 {order_no}）。",
    True: "您的实体市民卡充值 {amount} 元已在自助终端圈存到卡（订单号 {order_no}）。",
}


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


async def notify_credited_txn(connection: Connection, order: Any) -> None:
    """``order``: the order's row as it became ``credited`` (``RETURNING *``)."""
    # Imported here, as card does: payments reaches integrations only through this public call.
    from integrations.messages import Recipient, notify

    amount = int(order["amount"])
    data = {
        "order_id": str(order["id"]),
        "order_no": order["order_no"],
        "card_id": str(order["card_id"]),
        "amount": amount,
        "channel": order["channel"],
    }
    body = _BODY[bool(order["physical"])].format(amount=_yuan(amount), order_no=order["order_no"])
    await notify(
        connection,
        Recipient.person(order["person_id"]),
        KIND,
        _TITLE,
        body,
        data,
        dedupe_key=f"{KIND}:{order['id']}",
    )
