"""Who changed a card, and the hook through which every change reaches the platform audit log.

The card keeps its own lifecycle history (``card.lifecycle_events``); every change is also sent to
an :class:`AuditSink` in the same transaction. ``backend/wiring.py`` passes identity's
tamper-evident log (``identity.audit.record``) through :func:`identity_audit_sink`.
"""

from __future__ import annotations

import uuid
from typing import Literal, Protocol

import msgspec

from card._db import Connection

__all__ = ["SYSTEM", "Actor", "AuditSink", "DetailValue", "identity_audit_sink"]

DetailValue = str | int | bool | None | list[str]


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["person", "operator", "system"]
    id: str | None = None
    client_address: str | None = None
    client_id: str | None = None
    request_id: str | None = None


SYSTEM = Actor(kind="system", id="card")


class AuditSink(Protocol):
    """``card_id``: the card acted on or read; None for what concerns no one card (a search)."""

    async def __call__(
        self,
        connection: Connection,
        actor: Actor,
        action: str,
        card_id: uuid.UUID | None,
        details: dict[str, DetailValue],
    ) -> None: ...


def identity_audit_sink() -> AuditSink:
    """An :class:`AuditSink` writing to identity's audit chain (call it last in a transaction)."""
    from identity.audit import AuditEvent, record

    async def sink(
        connection: Connection,
        actor: Actor,
        action: str,
        card_id: uuid.UUID | None,
        details: dict[str, DetailValue],
    ) -> None:
        await record(
            connection,
            AuditEvent(
                action=f"card.{action}",
                actor_kind=actor.kind,
                actor_id=actor.id,
                target_kind="card" if card_id is not None else None,
                target_id=str(card_id) if card_id is not None else None,
                client_address=actor.client_address,
                client_id=actor.client_id,
                request_id=actor.request_id,
                details=details,
            ),
        )

    return sink
