"""The tamper-evident audit log shared by every domain: ``record`` an :class:`AuditEvent`."""

from identity.audit.chain import (
    GENESIS,
    AuditEntry,
    AuditEvent,
    AuditReceipt,
    ChainReport,
    canonical_digest,
    entries_for,
    record,
    verify_chain,
)

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditEvent",
    "AuditReceipt",
    "ChainReport",
    "canonical_digest",
    "entries_for",
    "record",
    "verify_chain",
]
