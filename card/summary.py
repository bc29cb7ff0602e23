"""The holder's card at a glance, in one query: for the home page (``integrations.entrance``).

:func:`card_summary` reads the holder's live card (else their latest), its applications' statuses
and its e-purse balance in a single statement: the balance comes from payments' ledger account
(``payments.accounts``, read only, the account ``card.epurses.ledger_account_id`` names), as
``payments.ledger.Balance.credit_balance`` computes it (posted credits minus posted debits).
Applications come back as text arrays, so the answer does not depend on the pool's jsonb codec.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from card._db import Connection, Pool

__all__ = ["HolderCardSummary", "card_summary", "health_card_of"]

_LIVE = ("active", "frozen", "lost")

_SUMMARY = """
SELECT c.id, c.card_number, c.status, c.issued_on, c.expires_on, c.physical,
       a.credits_posted - a.debits_posted AS balance,
       (SELECT array_agg(x.app_type ORDER BY x.app_type) FROM card.applications x WHERE x.card_id = c.id)
           AS app_types,
       (SELECT array_agg(x.status ORDER BY x.app_type) FROM card.applications x WHERE x.card_id = c.id)
           AS app_statuses
FROM card.cards c
LEFT JOIN card.epurses e ON e.card_id = c.id
LEFT JOIN payments.accounts a ON a.id = e.ledger_account_id
WHERE c.holder_id = $1
ORDER BY c.status IN ('active', 'frozen', 'lost') DESC, c.created_at DESC
LIMIT 1
"""


class HolderCardSummary(msgspec.Struct, frozen=True, kw_only=True):
    card_id: uuid.UUID
    card_number: str
    status: str  # active / frozen / lost / replaced / closed
    live: bool  # active, frozen or lost: the holder's current card
    issued_on: dt.date
    expires_on: dt.date
    physical: bool
    applications: dict[str, str]  # type -> status (pending / active / blocked / closed)
    balance: int | None  # fen; None when the purse has no ledger account


async def card_summary(db: Pool | Connection, holder_id: uuid.UUID) -> HolderCardSummary | None:
    """The holder's live card (else their most recent one), or None if they never had one."""
    row = await db.fetchrow(_SUMMARY, holder_id)
    if row is None:
        return None
    types, statuses = row["app_types"] or [], row["app_statuses"] or []
    return HolderCardSummary(
        card_id=row["id"],
        card_number=row["card_number"],
        status=row["status"],
        live=row["status"] in _LIVE,
        issued_on=row["issued_on"],
        expires_on=row["expires_on"],
        physical=row["physical"],
        applications=dict(zip(types, statuses, strict=True)),
        balance=row["balance"],
    )


async def health_card_of(db: Pool | Connection, holder_id: uuid.UUID) -> str | None:
    """The resident health card ID on the holder's active card, while its health application is
    active (what a hospital booking is made with); None otherwise (a frozen or lost card too)."""
    found = await db.fetchval(
        """
        SELECT a.attributes ->> 'health_card_id' FROM card.cards c
        JOIN card.applications a ON a.card_id = c.id AND a.app_type = 'health' AND a.status = 'active'
        WHERE c.holder_id = $1 AND c.status = 'active'
        """,
        holder_id,
    )
    return found if isinstance(found, str) else None
