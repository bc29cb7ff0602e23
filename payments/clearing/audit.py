"""The clearing jobs' entries in the platform's audit log (identity's tamper-evident chain).

A settlement run moves money (rebates to e-purses, the platform's fees, the operators' net to the
settlement bank account) and a reconciliation opens suspense items: like every other money-moving
or administrative action, each is recorded with who ran it, in the transaction that does the work,
so that the log and the books cannot disagree. The details hold dates, operators, channels,
amounts and counts only, never a card, a person or an order number.
"""

from __future__ import annotations

from payments.audit import Actor, audit_txn

__all__ = ["CLEARING", "Actor", "DetailValue", "audit_txn"]

# Runs started by the platform itself (the demo day, benchmarks) rather than by a person.
CLEARING = Actor(kind="system", id="clearing")

DetailValue = str | int | bool | None | list[str]
