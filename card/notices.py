"""Messages to the holder's in-app inbox on lifecycle changes (``integrations.messages``).

A :class:`Notifier` is called inside the lifecycle transaction, after the lifecycle event is
written: the message exists exactly when the change does, and the event id is its dedupe key, so
a change handled twice is one message. ``backend/wiring.py`` (through ``build_card_services``)
passes :func:`inbox_notifier`.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from card._db import Connection
from card.audit import Actor
from card.lifecycle.states import Action

__all__ = ["NOTICES", "Notifier", "inbox_notifier"]

# action -> (message kind, title, body with {last4}); zh-CN, as the app shows them.
NOTICES: dict[Action, tuple[str, str, str]] = {
    Action.FREEZE: (
        "card.frozen",
        "市民卡已冻结",
        "您的市民卡（尾号{last4}）已冻结，乘车码与电子钱包暂停使用。如非本人操作，请立即挂失。",
    ),
    Action.UNFREEZE: (
        "card.unfrozen",
        "市民卡已解冻",
        "您的市民卡（尾号{last4}）已解冻，可正常使用。",
    ),
    Action.REPORT_LOSS: (
        "card.lost",
        "市民卡已挂失",
        "您的市民卡（尾号{last4}）已挂失并在所有终端停用。补卡后，电子钱包余额在清算期结束后转入新卡。",
    ),
    Action.CLOSE: (
        "card.closed",
        "市民卡已注销",
        "您的市民卡（尾号{last4}）已注销，电子钱包余额将原路退回，无法原路退回的部分请到服务网点领取。",
    ),
}
_BY_OPERATOR = "（由客服办理）"


class Notifier(Protocol):
    async def __call__(
        self,
        connection: Connection,
        *,
        holder_id: uuid.UUID,
        card_id: uuid.UUID,
        card_number: str,
        action: Action,
        event_id: int,
        actor: Actor,
    ) -> None: ...


def inbox_notifier() -> Notifier:
    """A :class:`Notifier` writing to integrations' inbox; actions without a notice are skipped."""
    from integrations.messages import Recipient, notify

    async def send(
        connection: Connection,
        *,
        holder_id: uuid.UUID,
        card_id: uuid.UUID,
        card_number: str,
        action: Action,
        event_id: int,
        actor: Actor,
    ) -> None:
        notice = NOTICES.get(action)
        if notice is None:
            return
        kind, title, body = notice
        text = body.format(last4=card_number[-4:]) + (_BY_OPERATOR if actor.kind == "operator" else "")
        data = {"card_id": str(card_id), "card_last4": card_number[-4:], "event_id": event_id}
        await notify(
            connection, Recipient.person(holder_id), kind, title, text, data, dedupe_key=f"{kind}:{event_id}"
        )

    return send
