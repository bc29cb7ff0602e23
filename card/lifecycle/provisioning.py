"""Provisioning a card's applications from the directory, at issuance and on refresh.

Upstream look-ups run before any pooled connection is taken (no connection is held across an
outbound call) and concurrently; each answers a status and attributes, never an exception
(``card.applications``). A refresh only re-provisions applications that are ``pending`` and come
from an upstream, and writes only what changed, under the card's row lock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from card._db import Connection
from card.applications import APPLICATION_TYPES, TRANSIENT_REASONS, ApplicationDirectory, HolderDetails

__all__ = ["apply_refresh_txn", "due_for_refresh", "holder_for_refresh", "provision"]

Provisioned = list[tuple[str, str, dict[str, Any]]]  # (type, status, attributes) as stored


async def provision(
    holder: HolderDetails, directory: ApplicationDirectory | None, types: Iterable[str] | None = None
) -> Provisioned:
    """Every application type (or ``types``), provisioned concurrently."""
    kinds = [APPLICATION_TYPES[t] for t in types] if types is not None else list(APPLICATION_TYPES.values())
    answers = await asyncio.gather(*(kind.provision(holder, directory) for kind in kinds))
    return [
        (kind.name, status, msgspec.to_builtins(attributes))
        for kind, (status, attributes) in zip(kinds, answers, strict=True)
    ]


def due_for_refresh(rows: Iterable[Any], *, transient_only: bool) -> dict[str, dict[str, Any]]:
    """Of the card's pending applications (``app_type``, ``attributes`` rows), those to provision again."""
    due: dict[str, dict[str, Any]] = {}
    for row in rows:
        kind = APPLICATION_TYPES.get(row["app_type"])
        attributes = dict(row["attributes"] or {})
        if kind is None or not kind.upstream:
            continue
        if transient_only and attributes.get("pending_reason") not in TRANSIENT_REASONS:
            continue
        due[kind.name] = attributes
    return due


def holder_for_refresh(holder_id: uuid.UUID, loa: int, due: dict[str, dict[str, Any]]) -> HolderDetails:
    """The holder as issuance saw them: the identifiers kept on the pending applications (the social
    security number masked: the directory asks the upstreams with the full one, from identity)."""
    return HolderDetails(
        person_id=holder_id,
        loa=loa,
        social_security_number=due.get("social_security", {}).get("social_security_number"),
        health_card_id=due.get("health", {}).get("health_card_id"),
    )


async def apply_refresh_txn(
    connection: Connection, card_id: uuid.UUID, found: Provisioned, now: dt.datetime
) -> list[str]:
    """Write what changed on still-pending applications; returns ``type:status`` of each change."""
    changed: list[str] = []
    for app_type, status, attributes in found:
        updated = await connection.fetchval(
            "UPDATE card.applications SET status = $3, attributes = $4, updated_at = $5"
            " WHERE card_id = $1 AND app_type = $2 AND status = 'pending'"
            " AND (status <> $3 OR attributes <> $4::jsonb) RETURNING app_type",
            card_id,
            app_type,
            status,
            attributes,
            now,
        )
        if updated is not None:
            changed.append(f"{app_type}:{status}")
    return changed
