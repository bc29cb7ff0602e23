"""SQL for device bindings (one active binding per card)."""

from __future__ import annotations

import datetime as dt
import uuid

from card._db import Connection

__all__ = ["insert_binding_txn", "revoke_active_txn"]


async def revoke_active_txn(
    connection: Connection, card_id: uuid.UUID, *, reason: str, now: dt.datetime
) -> int | None:
    """Revoke the card's active binding; its authorisation id (to blacklist), or None if there was none."""
    found = await connection.fetchval(
        "UPDATE card.device_bindings SET status = 'revoked', revoked_at = $2, revoke_reason = $3"
        " WHERE card_id = $1 AND status = 'active' RETURNING authorisation_id",
        card_id,
        now,
        reason,
    )
    return None if found is None else int(found)


async def insert_binding_txn(
    connection: Connection,
    *,
    binding_id: uuid.UUID,
    card_id: uuid.UUID,
    device_public_key: bytes,
    label: str | None,
    authorisation: bytes,
    authorisation_id: int,
    key_id: int,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> None:
    await connection.execute(
        "INSERT INTO card.device_bindings (id, card_id, device_public_key, device_label, authorisation,"
        " authorisation_id, key_id, expires_at, status, bound_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
        " 'active', $9)",
        binding_id,
        card_id,
        device_public_key,
        label,
        authorisation,
        authorisation_id,
        key_id,
        expires_at,
        now,
    )
