"""The card domain's exceptions, carrying the RFC 9457 problem contract read by ``backend/errors.py``.

Messages never contain key material, a device private key or a full authorisation.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadDeviceKey",
    "CardClosed",
    "CardError",
    "CardExists",
    "CardForbidden",
    "CardNotFound",
    "FrozenByOperator",
    "InvalidTransition",
    "KeyStoreError",
    "NotEligible",
    "UnknownKeyVersion",
]


class CardError(Exception):
    problem_type: ClassVar[str] = "card-error"
    problem_title: ClassVar[str] = "Card error"
    problem_status: ClassVar[int] = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.problem_extra: dict[str, Any] = extra or {}


class CardNotFound(CardError):
    problem_type = "card-not-found"
    problem_title = "No such card"
    problem_status = 404


class CardForbidden(CardError):
    problem_type = "forbidden"
    problem_title = "Not allowed"
    problem_status = 403


class CardExists(CardError):
    """A person already holds a card that is not closed or replaced."""

    problem_type = "card-exists"
    problem_title = "The person already has a citizen card"
    problem_status = 409


class InvalidTransition(CardError):
    """The card's status does not allow the operation (the lifecycle state machine refused it)."""

    problem_type = "card-invalid-transition"
    problem_title = "Not allowed in the card's current status"
    problem_status = 409

    def __init__(self, action: str, status: str) -> None:
        super().__init__(
            f"cannot {action.replace('_', ' ')} a card that is {status}",
            extra={"action": action, "status": status},
        )
        self.action = action
        self.status = status


class CardClosed(InvalidTransition):
    problem_type = "card-closed"
    problem_title = "The card is closed"


class FrozenByOperator(CardError):
    """The holder tried to act on a card the city's card service froze (unfreeze, report lost,
    reissue, close): a service hold, which only an operator may lift or act on."""

    problem_type = "card-frozen-by-operator"
    problem_title = "The card was frozen by the card service"
    problem_status = 403

    def __init__(self) -> None:
        super().__init__(
            "the city's card service froze this card; only the service can unfreeze, replace or close it "
            "(call the card desk)"
        )


class NotEligible(CardError):
    """The holder does not meet the conditions (e.g. assurance level below L2)."""

    problem_type = "card-not-eligible"
    problem_title = "Not eligible for a citizen card"
    problem_status = 403


class BadDeviceKey(CardError):
    problem_type = "validation-error"
    problem_title = "The request is not valid"
    problem_status = 422

    def __init__(self, message: str) -> None:
        super().__init__(
            f"device_public_key: {message}",
            extra={"errors": [{"field": "device_public_key", "rule": "p256_point", "message": message}]},
        )


class KeyStoreError(CardError):
    problem_type = "card-key-store"
    problem_title = "Card key store error"
    problem_status = 500


class UnknownKeyVersion(KeyStoreError):
    problem_type = "card-unknown-key-version"
    problem_title = "Unknown card key version"
    problem_status = 422
