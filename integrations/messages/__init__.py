"""The in-app inbox: messages to a person or an organisation, fed by the other domains' events.

For the other domains, one call (it joins the caller's transaction when given a connection)::

    from integrations.messages import Recipient, notify

    await notify(connection, Recipient.person(holder_id), "card.frozen", "市民卡已冻结",
                 "您的市民卡已冻结…", {"card_id": str(card_id)}, dedupe_key=f"card.frozen:{event_id}")

Kinds in use: ``card.frozen``, ``card.lost``, ``payments.topup_credited``,
``health.appointment_booked``, ``gov.application_status_changed``.
"""

from __future__ import annotations

from integrations.messages.store import (
    KINDS,
    Message,
    MessagePage,
    Recipient,
    list_messages,
    mark_all_read,
    mark_read,
    notify,
    unread_count,
)

__all__ = [
    "KINDS",
    "Message",
    "MessagePage",
    "Recipient",
    "list_messages",
    "mark_all_read",
    "mark_read",
    "notify",
    "unread_count",
]
