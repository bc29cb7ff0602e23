"""Payments' entries in the platform's audit log (identity's tamper-evident chain).

Who acted (:class:`Actor`) and the one helper every payments module records through: the top-ups
(target kind ``topup``) and the clearing jobs (``settlement``, ``reconciliation``) alike, each in
the caller's transaction so that the log and the books cannot disagree.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from payments._db import Connection

__all__ = ["Actor", "audit_txn"]


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    kind: Literal["person", "operator", "system", "anonymous"]
    id: str | None = None
    client_address: str | None = None
    request_id: str | None = None


async def audit_txn(  # noqa: PLR0917 - one audit event
    connection: Connection,
    actor: Actor,
    action: str,
    target: tuple[str, str] | None,
    details: dict[str, Any],
    outcome: Literal["success", "failure", "denied"] = "success",
) -> None:
    """Record ``payments.<action>`` on ``target`` (kind, id), if any, in the caller's transaction."""
    from identity.audit import AuditEvent, record  # identity's chain, imported late

    await record(
        connection,
        AuditEvent(
            action=f"payments.{action}",
            outcome=outcome,
            actor_kind=actor.kind,
            actor_id=actor.id,
            target_kind=target[0] if target else None,
            target_id=target[1] if target else None,
            client_address=actor.client_address,
            request_id=actor.request_id,
            details=details,
        ),
    )
