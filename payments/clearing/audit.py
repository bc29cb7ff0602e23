"""The clearing jobs' entries in the platform's audit log (identity's tamper-evident chain).

A settlement run moves money (rebates to e-purses, the platform's fees, the operators' net to the
settlement bank account) and a reconciliation opens suspense items: like every other money-moving
or administrative action, each is recorded with who ran it, in the transaction that does the work,
so that the log and the books cannot disagree. The details hold dates, operators, channels,
amounts and counts only, never a card, a person or an order number.
"""

from __future__ import annotations

from typing import Literal

from payments._db import Connection
from payments.topup.service import Actor

__all__ = ["CLEARING", "Actor", "DetailValue", "audit_clearing_txn"]

# Runs started by the platform itself (the demo day, benchmarks) rather than by a person.
CLEARING = Actor(kind="system", id="clearing")

DetailValue = str | int | bool | None | list[str]


async def audit_clearing_txn(  # noqa: PLR0917 - one audit event
    connection: Connection,
    actor: Actor,
    action: str,
    target: tuple[str, str],
    details: dict[str, DetailValue],
    outcome: Literal["success", "failure", "denied"] = "success",
) -> None:
    """Record ``payments.<action>`` on ``target`` (kind, id) in the caller's transaction."""
    from identity.audit import AuditEvent, record  # identity's chain; imported late like topup's

    await record(
        connection,
        AuditEvent(
            action=f"payments.{action}",
            outcome=outcome,
            actor_kind=actor.kind,
            actor_id=actor.id,
            target_kind=target[0],
            target_id=target[1],
            client_address=actor.client_address,
            request_id=actor.request_id,
            details=details,
        ),
    )
