"""What a status change does besides the status, in the card's transaction: the blacklist, the
phone's authorisation, the open physical card request, and on closing the applications and the
refund of the balance after the settlement window."""

from __future__ import annotations

import datetime as dt

from card._db import Connection
from card.audit import DetailValue
from card.blacklist.store import EntryKind, ListEntry, change_txn
from card.devices.repo import revoke_active_txn
from card.lifecycle import repo
from card.lifecycle.states import Action, Status
from card.settings import CardSettings

__all__ = ["status_effects_txn"]


async def status_effects_txn(  # noqa: PLR0917 - the status change's shape
    connection: Connection,
    settings: CardSettings,
    card: repo.CardRow,
    action: Action,
    target: Status,
    now: dt.datetime,
) -> dict[str, DetailValue]:
    """Apply the effects of ``card`` (as locked) moving to ``target``; returns details for the history."""
    adds: list[ListEntry] = []
    removes: list[tuple[EntryKind, int]] = []
    details: dict[str, DetailValue] = {}
    if target in (Status.FROZEN, Status.LOST, Status.REPLACED, Status.CLOSED):
        adds.append(ListEntry(EntryKind.CARD, card.card_number_int, card.id, target.value))
    if action is Action.UNFREEZE:
        removes.append((EntryKind.CARD, card.card_number_int))
    if target in (Status.LOST, Status.REPLACED, Status.CLOSED):
        revoked = await revoke_active_txn(connection, card.id, reason=action.value, now=now)
        if revoked is not None:
            adds.append(ListEntry(EntryKind.AUTHORISATION, revoked, card.id, action.value))
        # The bureau must never print a card under a number that is lost, replaced or closed.
        cancelled = await repo.cancel_physical_request_txn(connection, card.id)
        if cancelled is not None:
            details["physical_request_cancelled"] = str(cancelled)
    if target is Status.CLOSED:
        await connection.execute(
            "UPDATE card.applications SET status = 'closed', updated_at = $2 WHERE card_id = $1",
            card.id,
            now,
        )
        # Readers still upload taps made before the close until the window ends (aftercare).
        await connection.execute(
            "INSERT INTO card.close_refunds (card_id, due_at, status) VALUES ($1, $2, 'scheduled') "
            "ON CONFLICT DO NOTHING",
            card.id,
            now + dt.timedelta(days=settings.settlement_window_days),
        )
    version = await change_txn(connection, adds=adds, removes=removes, now=now)
    if version is not None:
        details["blacklist_version"] = version
    return details
