"""Business refusals an upstream answers (not failures: the breaker counts them as successes).

``UpstreamError`` and its kinds (failures of the upstream) live in ``integrations.registries``,
the module ``identity`` depends on. Each class carries the problem contract of ``backend/errors.py``.
"""

from __future__ import annotations

from integrations.registries import (
    UpstreamError,
    UpstreamMalformed,
    UpstreamRejected,
    UpstreamUnavailable,
)

__all__ = [
    "BillAlreadyPaid",
    "BillAmountMismatch",
    "CircuitOpen",
    "EntranceError",
    "IdempotencyKeyReused",
    "InvalidQuery",
    "MessageNotFound",
    "NotConfigured",
    "ServiceNotFound",
    "ServiceRefusal",
    "SlotTaken",
    "UnknownAtUpstream",
    "UpstreamError",
    "UpstreamMalformed",
    "UpstreamRejected",
    "UpstreamUnavailable",
]


class CircuitOpen(UpstreamUnavailable):
    """The connector's circuit breaker is open: no call was made."""


class NotConfigured(UpstreamUnavailable):
    """No URL is configured for this upstream."""


class ServiceRefusal(Exception):
    problem_type = "service-refused"
    problem_title = "The service refused the request"
    problem_status = 409


class SlotTaken(ServiceRefusal):
    problem_type = "appointment-slot-taken"
    problem_title = "The appointment slot is no longer available"


class BillAlreadyPaid(ServiceRefusal):
    problem_type = "bill-already-paid"
    problem_title = "The bill is already paid"


class BillAmountMismatch(ServiceRefusal):
    problem_type = "bill-amount-mismatch"
    problem_title = "The amount is not the bill's amount"
    problem_status = 422


class UnknownAtUpstream(ServiceRefusal):
    problem_type = "unknown-at-upstream"
    problem_title = "The service does not know this item"
    problem_status = 404


class EntranceError(Exception):
    """A request to the catalogue, the home or the inbox that we refuse."""

    problem_type = "entrance-error"
    problem_title = "The request was refused"
    problem_status = 400


class InvalidQuery(EntranceError):
    problem_type = "invalid-query"
    problem_title = "A query parameter is not valid"


class IdempotencyKeyReused(EntranceError):
    """The caller's Idempotency-Key was first used with another request (not replayed)."""

    problem_type = "idempotency-key-reused"
    problem_title = "This Idempotency-Key was used for another request"
    problem_status = 422


class MessageNotFound(EntranceError):
    problem_type = "message-not-found"
    problem_title = "No such message"
    problem_status = 404


class ServiceNotFound(EntranceError):
    problem_type = "service-not-found"
    problem_title = "No such service"
    problem_status = 404
