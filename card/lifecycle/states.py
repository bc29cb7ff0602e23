"""The card lifecycle as a checked state machine: every operation is a transition in ``TRANSITIONS``.

::

    active ──freeze──▶ frozen ──unfreeze──▶ active
    active/frozen ──report_loss──▶ lost            (again on lost: no change, idempotent)
    active/frozen/lost ──reissue──▶ replaced ──settle (job)──▶ closed
    active/frozen/lost ──close──▶ closed           (closed is final: everything else is 409)

``activate_device`` and ``request_physical`` leave the status as it is but need an active card.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from card.errors import CardClosed, InvalidTransition

__all__ = ["IDEMPOTENT", "TRANSITIONS", "Action", "Status", "transition"]


class Status(enum.StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    LOST = "lost"
    REPLACED = "replaced"
    CLOSED = "closed"


class Action(enum.StrEnum):
    FREEZE = "freeze"
    UNFREEZE = "unfreeze"
    REPORT_LOSS = "report_loss"
    REISSUE = "reissue"
    CLOSE = "close"
    SETTLE = "settle"
    ACTIVATE_DEVICE = "activate_device"
    REQUEST_PHYSICAL = "request_physical"


S, A = Status, Action
TRANSITIONS: Final[Mapping[Action, Mapping[Status, Status]]] = {
    A.FREEZE: {S.ACTIVE: S.FROZEN, S.FROZEN: S.FROZEN},
    A.UNFREEZE: {S.FROZEN: S.ACTIVE, S.ACTIVE: S.ACTIVE},
    A.REPORT_LOSS: {S.ACTIVE: S.LOST, S.FROZEN: S.LOST, S.LOST: S.LOST},
    A.REISSUE: {S.ACTIVE: S.REPLACED, S.FROZEN: S.REPLACED, S.LOST: S.REPLACED},
    A.CLOSE: {S.ACTIVE: S.CLOSED, S.FROZEN: S.CLOSED, S.LOST: S.CLOSED},
    A.SETTLE: {S.REPLACED: S.CLOSED},
    A.ACTIVATE_DEVICE: {S.ACTIVE: S.ACTIVE},
    A.REQUEST_PHYSICAL: {S.ACTIVE: S.ACTIVE},
}
# Repeating these on a card already in the target status is a no-op answered with the card.
IDEMPOTENT: Final = frozenset({A.FREEZE, A.UNFREEZE, A.REPORT_LOSS})


def transition(action: Action, status: Status) -> Status:
    """The status after ``action``; :class:`CardClosed` / :class:`InvalidTransition` (409) if refused."""
    target = TRANSITIONS[action].get(status)
    if target is None:
        if status is Status.CLOSED:
            raise CardClosed(action.value, status.value)
        raise InvalidTransition(action.value, status.value)
    return target
