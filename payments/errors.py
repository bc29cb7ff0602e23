"""The payments domain's exceptions, carrying the problem contract read by ``backend/errors.py``."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["LedgerError", "PaymentsError"]


class PaymentsError(Exception):
    problem_type: ClassVar[str] = "payments-error"
    problem_title: ClassVar[str] = "Payment error"
    problem_status: ClassVar[int] = 422
    problem_extra: dict[str, Any] | None = None


class LedgerError(PaymentsError):
    """A ledger request that cannot be applied at all (not a per-transfer result)."""

    problem_type = "ledger-error"
    problem_title = "Ledger request refused"
