"""Development and test fleets: cards with funded e-purses and their personalisation records.

Not a product path. Until the card issue exposes a bulk issuing function for test cards, this
writes the rows a card issuance writes (``card.cards``, ``card.epurses``; a ``payments`` e-purse
account funded from a control account through ``ports.fund_test_purses``) and asks the key store
for each card's signed personalisation record, sealed to the caller's transport key, exactly as
the card bureau gets it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from card._db import Pool
from card.keys import CardKeyRef, CardKeyStore, PersonalisationCard
from card.qr import Concession
from card.terminal.host.ports import fund_test_purses
from payments.posting import open_epurse

__all__ = ["issue_test_cards", "luhn_number"]

_NAMESPACE: Final = uuid.UUID("0b3c1f4e-58a2-4a55-9d2e-7f0e7c5d2a11")
_FLEET_LOCK: Final = 0x7465_7374_666C_7431  # pg_advisory_lock key of fleet numbering ("testflt1")


async def _insert_cards(
    pool: Pool, count: int, prefix: str, version: int, today: dt.date
) -> tuple[list[tuple[uuid.UUID, str, bytes]], list[uuid.UUID]]:
    start = int(await pool.fetchval("SELECT count(*) FROM card.cards")) + 1
    cards = []
    for i in range(start, start + count):
        number = luhn_number(prefix + f"{i:017d}")
        cards.append((uuid.uuid5(_NAMESPACE, number), number, bytes.fromhex(number.rjust(20, "0"))))
    accounts = [await open_epurse(pool, str(cid)) for cid, _, _ in cards]
    async with pool.acquire() as db, db.transaction():
        await db.executemany(
            "INSERT INTO card.cards (id, card_number, card_number_int, app_serial, holder_id, status, "
            "issued_on, expires_on, status_changed_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, now())",
            [
                (cid, n, int(n), serial, uuid.uuid4(), today, today + dt.timedelta(days=3650))
                for cid, n, serial in cards
            ],
        )
        await db.executemany(
            "INSERT INTO card.epurses (card_id, key_version, ledger_account_id, concession) "
            "VALUES ($1, $2, $3, 1)",
            [(cid, version, a) for (cid, _, _), a in zip(cards, accounts, strict=True)],
        )
    return cards, accounts


def luhn_number(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


async def issue_test_cards(
    pool: Pool,
    keys: CardKeyStore,
    *,
    count: int,
    balance: int,
    issuer_id: bytes,
    transport_key: ec.EllipticCurvePublicKey,
    prefix: str = "8",
) -> list[bytes]:
    """``count`` active cards with ``balance`` fen each; their signed personalisation documents."""
    version = await keys.current_version()
    today = dt.datetime.now(dt.UTC).date()
    async with pool.acquire() as guard:
        # Card numbers follow the count of cards: two fleets numbered at once would pick the same
        # ones (seen with two `citizen-terminals load` started together), so one fleet at a time.
        await guard.execute("SELECT pg_advisory_lock($1)", _FLEET_LOCK)
        try:
            cards, accounts = await _insert_cards(pool, count, prefix, version, today)
        finally:
            await guard.execute("SELECT pg_advisory_unlock($1)", _FLEET_LOCK)
    if balance:
        await fund_test_purses(pool, accounts, balance)
    documents = []
    for _, number, serial in cards:
        document = await keys.export_personalisation(
            PersonalisationCard(
                card_number=number,
                key=CardKeyRef(version, serial, issuer_id),
                issued_on=today,
                expires_on=today + dt.timedelta(days=3650),
                concession=Concession.STANDARD,
                overdraft_limit=0,
            ),
            transport_key,
        )
        documents.append(msgspec.json.encode(document))
    return documents
