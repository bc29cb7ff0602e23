"""Writing a new card: one statement for the card, its applications, its purse and its first event.

Issuance is on the path of every citizen reaching L2 (and of bulk migrations), so it is kept to a
few round trips: the number and key version in one query, the ledger account, then a single
data-modifying CTE for the rows; the response is built from what was written, not read back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from card._db import Connection
from card.audit import Actor
from card.keys.api import CardKeyStore
from card.ledger import EpurseLedger
from card.lifecycle.numbers import app_serial_for, card_number_for
from card.lifecycle.views import ApplicationView, CardView, EpurseView
from card.qr import Concession
from card.settings import CardSettings

__all__ = ["expiry_date", "insert_card_txn"]

_INSERT = """
WITH card AS (
    INSERT INTO card.cards (id, card_number, card_number_int, app_serial, holder_id, status, issued_on,
                            expires_on, replaces_id, status_changed_at, created_at)
    VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $9) RETURNING id
), apps AS (
    INSERT INTO card.applications (card_id, app_type, status, attributes, created_at, updated_at)
    SELECT $1, t, s, a, $9, $9 FROM unnest($10::text[], $11::text[], $12::jsonb[]) AS x(t, s, a)
), purse AS (
    INSERT INTO card.epurses (card_id, key_version, ledger_account_id, overdraft_limit, concession)
    VALUES ($1, $13, $14, $15, $16)
)
INSERT INTO card.lifecycle_events (card_id, occurred_at, action, from_status, to_status, actor_kind, actor_id,
                                   details)
VALUES ($1, $9, 'issue', NULL, 'active', $17, $18, $19)
"""


def expiry_date(issued_on: dt.date, validity_years: int) -> dt.date:
    """The same day ``validity_years`` later; a card issued on 29 February expires on 28 February
    when that year has none (the card must not outlive its validity by a day)."""
    try:
        return issued_on.replace(year=issued_on.year + validity_years)
    except ValueError:  # 29 February into a common year
        return issued_on.replace(year=issued_on.year + validity_years, day=28)


async def insert_card_txn(
    connection: Connection,
    *,
    settings: CardSettings,
    keys: CardKeyStore,
    ledger: EpurseLedger | None,
    holder_id: uuid.UUID,
    apps: list[tuple[str, str, dict[str, Any]]],
    concession: Concession,
    overdraft_limit: int,
    actor: Actor,
    now: dt.datetime,
    replaces_id: uuid.UUID | None = None,
) -> CardView:
    """Insert a card in the caller's transaction. A second live card for the holder raises
    ``asyncpg.UniqueViolationError`` on ``cards_one_live_per_holder``."""
    row = await connection.fetchrow(
        "SELECT nextval('card.card_number_seq') AS seq, (SELECT current_version FROM card.key_state) AS kv"
    )
    assert row is not None
    key_version = row["kv"] if row["kv"] is not None else await keys.current_version()
    number = card_number_for(int(row["seq"]), settings)
    card_id = uuid.uuid4()
    account = None
    if ledger is not None:
        account = await ledger.open_account_txn(connection, card_id=card_id, overdraft_limit=overdraft_limit)
    today = now.date()
    expires = expiry_date(today, settings.validity_years)
    details = {"replaces_id": str(replaces_id)} if replaces_id else {}
    await connection.execute(
        _INSERT,
        card_id,
        number,
        int(number),
        app_serial_for(number),
        holder_id,
        today,
        expires,
        replaces_id,
        now,
        [a[0] for a in apps],
        [a[1] for a in apps],
        [a[2] for a in apps],
        int(key_version),
        account,
        overdraft_limit,
        int(concession),
        actor.kind,
        actor.id,
        details,
    )
    return CardView(
        id=card_id,
        card_number=number,
        status="active",
        issued_on=today,
        expires_on=expires,
        physical=False,
        replaces_id=replaces_id,
        applications=[ApplicationView(type=t, status=s, attributes=a) for t, s, a in sorted(apps)],
        epurse=EpurseView(
            balance=0 if ledger is not None else None,
            offline_counter=0,
            online_counter=0,
            overdraft_limit=overdraft_limit,
            concession=int(concession),
            key_version=int(key_version),
        ),
        device=None,
    )
