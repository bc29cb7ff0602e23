"""Jobs run by the CLI: balance transfers after reissue, and personalisation exports for the bureau.

``run_balance_transfers(now)``: for every reissued card whose settlement window has closed, move the
old purse's balance of record (which already reflects every offline tap uploaded meanwhile: the
gateway debits the old account) to the new card, then close the old card. Each card settles in its
own transaction, rows locked with ``SKIP LOCKED`` so two runners never settle one card twice, and
the ledger transfer id is derived from the card id, so a retry cannot pay twice either.
``citizen card settle [--now ISO]`` runs it; tests pass ``now`` instead of waiting.

``export_requested``: the signed personalisation file of every open physical card request, each
claimed with ``SKIP LOCKED`` in its own transaction (two runs never export one request twice); a
request whose card is no longer active is cancelled rather than stopping everyone else's.
``citizen card personalise`` runs it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from card._db import Connection, Pool
from card.audit import SYSTEM, Actor, AuditSink, DetailValue
from card.keys.api import CardKeyStore, PersonalisationCard
from card.keys.personalisation import recipient_kid
from card.ledger import EpurseLedger
from card.lifecycle import repo
from card.lifecycle.states import Action, Status, transition
from card.qr import Concession
from card.settings import CardSettings

__all__ = ["Export", "Settled", "export_requested", "run_balance_transfers"]


class Settled(msgspec.Struct, frozen=True, kw_only=True):
    old_card_id: uuid.UUID
    new_card_id: uuid.UUID
    amount: int


class Export(msgspec.Struct, frozen=True, kw_only=True):
    export_id: uuid.UUID
    card_number: str
    document: bytes  # the SignedDocument as JSON, the file sent to the bureau


async def run_balance_transfers(
    pool: Pool,
    ledger: EpurseLedger | None,
    *,
    now: dt.datetime,
    actor: Actor = SYSTEM,
    audit: AuditSink | None = None,
    limit: int = 1000,
) -> list[Settled]:
    settled: list[Settled] = []
    for _ in range(limit):
        async with pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(
                "SELECT old_card_id, new_card_id FROM card.balance_transfers"
                " WHERE status = 'scheduled' AND due_at <= $1 ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                now,
            )
            if row is None:
                break
            old_id, new_id = row["old_card_id"], row["new_card_id"]
            old = await repo.lock_card_txn(connection, old_id)
            target = transition(Action.SETTLE, old.status)
            accounts = {
                r["card_id"]: r["ledger_account_id"]
                for r in await connection.fetch(
                    "SELECT card_id, ledger_account_id FROM card.epurses WHERE card_id = ANY($1::uuid[])",
                    [old_id, new_id],
                )
            }
            amount = 0
            old_account, new_account = accounts.get(old_id), accounts.get(new_id)
            if ledger is not None and old_account is not None and new_account is not None:
                amount = await ledger.balance(connection, old_account)
                if amount:
                    source, sink = (old_account, new_account) if amount > 0 else (new_account, old_account)
                    await ledger.move_balance_txn(
                        connection,
                        transfer_id=uuid.uuid5(old_id, "reissue-balance"),
                        from_account=source,
                        to_account=sink,
                        amount=abs(amount),
                    )
            await connection.execute(
                "UPDATE card.balance_transfers SET status = 'done', amount = $2, done_at = $3"
                " WHERE old_card_id = $1",
                old_id,
                amount,
                now,
            )
            await repo.set_status_txn(connection, old_id, target, now)
            details: dict[str, DetailValue] = {"new_card_id": str(new_id), "amount": amount}
            # Reissue cancelled it already; a request left from before that rule is cancelled here.
            cancelled = await repo.cancel_physical_request_txn(connection, old_id)
            if cancelled is not None:
                details["physical_request_cancelled"] = str(cancelled)
            await repo.record_event_txn(
                connection,
                old_id,
                action=Action.SETTLE.value,
                from_status=old.status,
                to_status=target,
                actor=actor,
                now=now,
                details=details,
            )
            if audit is not None:
                await audit(connection, actor, "settle", old_id, details)
        settled.append(Settled(old_card_id=old_id, new_card_id=new_id, amount=amount))
    return settled


# One open request at a time, with its card, both locked; rows another run holds are left to it, so
# two runs never export one request twice. A frozen card's request waits (a freeze is undone).
_CLAIM_REQUEST = """
SELECT p.id, p.card_id FROM card.physical_requests p JOIN card.cards c ON c.id = p.card_id
WHERE p.status = 'requested' AND c.status <> 'frozen'
ORDER BY p.requested_at, p.id LIMIT 1 FOR UPDATE OF p, c SKIP LOCKED
"""


async def export_requested(
    pool: Pool,
    keys: CardKeyStore,
    settings: CardSettings,
    transport_key: ec.EllipticCurvePublicKey,
    *,
    now: dt.datetime,
    actor: Actor = SYSTEM,
    audit: AuditSink | None = None,
    on_export: Callable[[Export], Awaitable[None]] | None = None,
    limit: int = 10_000,
) -> list[Export]:
    """Personalise every requested physical card: a signed record per card, stored and returned.

    Each request is claimed and exported in its own transaction. A request whose card is no longer
    active (lost, replaced or closed before that cancelled requests) is cancelled, recorded and
    audited, instead of stopping the run; a frozen card's request stays open until the card is
    unfrozen. ``on_export`` runs after each export has committed (the CLI writes the file there),
    so an error later in the run never loses the files of the exports already made."""
    exports: list[Export] = []
    kid = recipient_kid(transport_key)
    for _ in range(limit):
        async with pool.acquire() as connection, connection.transaction():
            request = await connection.fetchrow(_CLAIM_REQUEST)
            if request is None:
                break
            card = await repo.lock_card_txn(connection, request["card_id"])  # ours already
            if card.status is not Status.ACTIVE:
                await _cancel_request_txn(connection, card, request["id"], actor, audit, now)
                continue
            export = await _export_txn(
                connection, keys, settings, transport_key, kid, card, request["id"], now
            )
            details: dict[str, DetailValue] = {"export_id": str(export.export_id), "recipient_kid": kid}
            await repo.note_txn(
                connection,
                card.id,
                action="personalise",
                status=card.status,
                actor=actor,
                now=now,
                details=details,
                audit=audit,
            )
        exports.append(export)
        if on_export is not None:
            await on_export(export)
    return exports


async def _export_txn(  # noqa: PLR0917 - one private call site
    connection: Connection,
    keys: CardKeyStore,
    settings: CardSettings,
    transport_key: ec.EllipticCurvePublicKey,
    kid: str,
    card: repo.CardRow,
    request_id: uuid.UUID,
    now: dt.datetime,
) -> Export:
    purse = await connection.fetchrow(
        "SELECT concession, overdraft_limit FROM card.epurses WHERE card_id = $1", card.id
    )
    assert purse is not None
    key_ref = await repo.key_ref_for(connection, card.id, settings)
    document = await keys.export_personalisation(
        PersonalisationCard(
            card_number=card.card_number,
            key=key_ref,
            issued_on=card.issued_on,
            expires_on=card.expires_on,
            concession=Concession(purse["concession"]),
            overdraft_limit=purse["overdraft_limit"],
        ),
        transport_key,
    )
    encoded = msgspec.json.encode(document)
    export_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO card.personalisation_exports (id, card_id, request_id, key_version,"
        " recipient_kid, document, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        export_id,
        card.id,
        request_id,
        key_ref.key_version,
        kid,
        encoded,
        now,
    )
    await connection.execute(
        "UPDATE card.physical_requests SET status = 'exported', exported_at = $2 WHERE id = $1",
        request_id,
        now,
    )
    await connection.execute("UPDATE card.cards SET physical = true WHERE id = $1", card.id)
    return Export(export_id=export_id, card_number=card.card_number, document=encoded)


async def _cancel_request_txn(  # noqa: PLR0917 - one private call site
    connection: Connection,
    card: repo.CardRow,
    request_id: uuid.UUID,
    actor: Actor,
    audit: AuditSink | None,
    now: dt.datetime,
) -> None:
    await connection.execute(
        "UPDATE card.physical_requests SET status = 'cancelled' WHERE id = $1", request_id
    )
    details: dict[str, DetailValue] = {"request_id": str(request_id), "card_status": card.status.value}
    await repo.note_txn(
        connection,
        card.id,
        action="cancel_physical",
        status=card.status,
        actor=actor,
        now=now,
        details=details,
        audit=audit,
    )
