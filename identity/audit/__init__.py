"""The tamper-evident audit log shared by every domain: ``record`` an :class:`AuditEvent`.

Events are chained by a sealer shortly after they commit (:mod:`identity.audit.sealer`): to read
everything, sealed or not, use :func:`entries_for` or the view ``identity.audit_events``.
"""

from identity.audit.chain import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    AuditReceipt,
    ChainReport,
    canonical_digest,
    entries_for,
    on_record,
    pending_insert,
    pending_params,
    record,
    recorded,
    verify_chain,
)
from identity.audit.sealer import AuditSealer, SealResult, seal, seal_all

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditEvent",
    "AuditReceipt",
    "AuditSealer",
    "ChainReport",
    "SealResult",
    "canonical_digest",
    "entries_for",
    "on_record",
    "pending_insert",
    "pending_params",
    "record",
    "recorded",
    "seal",
    "seal_all",
    "verify_chain",
]
