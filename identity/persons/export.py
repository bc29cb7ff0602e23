"""The audit entries of a personal data export, as the person may see them.

An export holds the person's own data (PIPL art. 45, GDPR art. 15), not other people's: the entries
where the person was the target also hold who acted on them (an operator's or another citizen's
account id), from which workstation address and with which request id. Those are the other party's
personal data and the office's internals (PIPL art. 6, data minimisation), so an entry is projected:
another actor is named by its kind only (operator, person, ...), addresses are kept only where the
person acted themselves, and request ids and the chain's hashes (internal bookkeeping) are left out.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from identity.audit import AuditEntry

__all__ = ["ExportedAuditEntry", "for_export"]

# Targets that are someone else when they are not the person: their ids are not the person's data.
_PEOPLE = frozenset({"account", "operator"})


class ExportedAuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int | None
    occurred_at: dt.datetime
    action: str
    outcome: str
    actor_kind: str  # "person", "operator", "anonymous", ...
    actor_id: str | None  # the person's own id; None when someone else acted
    acting_for: str | None  # the organisation the person acted for
    target_kind: str | None
    target_id: str | None
    client_address: str | None  # the person's own address, when the person acted
    client_id: str | None  # the service (OpenID client) the person used
    details: dict[str, Any]


def for_export(entry: AuditEntry, account_id: uuid.UUID) -> ExportedAuditEntry:
    own = entry.actor_id == str(account_id)
    target_is_other = entry.target_kind in _PEOPLE and entry.target_id != str(account_id)
    return ExportedAuditEntry(
        seq=entry.seq,
        occurred_at=entry.occurred_at,
        action=entry.action,
        outcome=entry.outcome,
        actor_kind=entry.actor_kind,
        actor_id=entry.actor_id if own else None,
        acting_for=entry.acting_for if own else None,
        target_kind=entry.target_kind,
        target_id=None if target_is_other else entry.target_id,
        client_address=entry.client_address if own else None,
        client_id=entry.client_id,
        details=entry.details,
    )
