"""Card lifecycle service: issue, look up, freeze/unfreeze, report loss, reissue, close, physical card.

Every change runs in one transaction that locks the card row, checks the transition
(``states.transition``), applies its effects (``card.lifecycle.effects``: blacklist version, device
revocation, physical card request; the ledger), writes the lifecycle event, the holder's inbox
message (``card.notices``) and, last, the audit entry. A freeze records whose it is
(``frozen_by``): the holder may lift only their own; the card service's (an operator's, a job's)
only an operator lifts, and the service freezing a card the holder froze makes the freeze its own.
Upstream look-ups (applications) and refunds (closing) run outside any transaction. Times come
from ``now`` (default: the clock), so tests drive the settlement window without waiting.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from card._db import Connection, Pool
from card.applications import ApplicationDirectory, HolderDetails
from card.audit import Actor, AuditSink, DetailValue
from card.errors import CardExists, CardNotFound, FrozenByOperator, NotEligible
from card.keys.api import CardKeyStore
from card.ledger import EpurseLedger
from card.lifecycle import repo
from card.lifecycle.aftercare import refresh_card_applications
from card.lifecycle.effects import status_effects_txn
from card.lifecycle.issuance import insert_card_txn
from card.lifecycle.provisioning import provision
from card.lifecycle.states import IDEMPOTENT, Action, Status, transition
from card.lifecycle.views import CardSummary, CardView, LifecycleEvent
from card.notices import Notifier
from card.qr import Concession
from card.settings import CardSettings
from card.summary import HolderCardSummary, card_summary

__all__ = ["CardService"]

MIN_LOA = 2


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _freezer(actor: Actor) -> str:
    """Whose freeze it would be: the holder's own (the citizen API acts only on the holder's own
    card), else the card service's (an operator, or a system job)."""
    return "holder" if actor.kind == "person" else "operator"


def _holder_may_act(card: repo.CardRow, action: Action, freezer: str) -> None:
    """A freeze the card service made (a fraud hold, an investigation) is a hold on the card: its
    holder may not lift it, nor get round it by reporting the card lost, replacing it (a new,
    active card with the balance) or closing it (the balance refunded). Freezing it again is
    harmless and stays a no-op."""
    if (
        freezer == "holder"
        and card.status is Status.FROZEN
        and card.frozen_by != "holder"
        and action is not Action.FREEZE
    ):
        raise FrozenByOperator


class CardService:
    def __init__(
        self,
        pool: Pool,
        keys: CardKeyStore,
        settings: CardSettings,
        *,
        ledger: EpurseLedger | None = None,
        audit: AuditSink | None = None,
        directory: ApplicationDirectory | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.pool = pool
        self.keys = keys
        self.settings = settings
        self.ledger = ledger
        self.audit = audit
        self.directory = directory
        self.notifier = notifier

    # --- reading ------------------------------------------------------------------------------------------

    async def view(self, card_id: uuid.UUID) -> CardView:
        async with self.pool.acquire() as connection:
            balance = await self._balance(connection, card_id)
            return await repo.card_view(connection, card_id, balance=balance)

    async def card_id_for_holder(self, holder_id: uuid.UUID) -> uuid.UUID:
        async with self.pool.acquire() as connection:
            return await repo.latest_card_id_for_holder(connection, holder_id)

    async def view_for_holder(self, holder_id: uuid.UUID) -> CardView:
        return await self.view(await self.card_id_for_holder(holder_id))

    async def summary_for_holder(self, holder_id: uuid.UUID) -> HolderCardSummary | None:
        """The holder's card, applications' statuses and balance in one query (``card.summary``)."""
        return await card_summary(self.pool, holder_id)

    async def card_for_holder(self, holder: HolderDetails, actor: Actor) -> CardView:
        """``GET /cards/me``: the holder's card (live, else latest); one is issued (``ensure_card``)
        if they never had any. Pending applications whose look-up failed transiently are retried."""
        try:
            card_id = await self.card_id_for_holder(holder.person_id)
        except CardNotFound:
            return await self.ensure_card(holder, actor)
        return await self.refresh_applications(card_id, actor, transient_only=True)

    async def history(self, card_id: uuid.UUID) -> list[LifecycleEvent]:
        async with self.pool.acquire() as connection:
            return await repo.history(connection, card_id)

    async def search(
        self,
        *,
        card_number: str | None = None,
        holder_id: uuid.UUID | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[CardSummary]:
        async with self.pool.acquire() as connection:
            return await repo.search(
                connection, card_number=card_number, holder_id=holder_id, status=status, limit=limit
            )

    async def _balance(self, connection: Connection, card_id: uuid.UUID) -> int | None:
        if self.ledger is None:
            return None
        account = await connection.fetchval(
            "SELECT ledger_account_id FROM card.epurses WHERE card_id = $1", card_id
        )
        return None if account is None else await self.ledger.balance(connection, account)

    # --- issuance -----------------------------------------------------------------------------------------

    async def issue(
        self,
        holder: HolderDetails,
        actor: Actor,
        *,
        concession: Concession = Concession.STANDARD,
        now: dt.datetime | None = None,
    ) -> CardView:
        """Issue the holder's card with every application type. 409 ``card-exists`` if they have one."""
        if holder.loa < MIN_LOA:
            raise NotEligible(f"a citizen card needs assurance level L{MIN_LOA} (real-name verified)")
        now = now or _utcnow()
        apps = await provision(holder, self.directory)  # before taking a connection
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                card = await insert_card_txn(
                    connection,
                    settings=self.settings,
                    keys=self.keys,
                    ledger=self.ledger,
                    holder_id=holder.person_id,
                    apps=apps,
                    concession=concession,
                    overdraft_limit=self.settings.default_overdraft_limit_fen,
                    actor=actor,
                    now=now,
                )
                await self._audit(connection, actor, "issue", card.id, {"concession": int(concession)})
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != "cards_one_live_per_holder":
                raise
            raise CardExists(
                "this person already has a citizen card; report it lost to get a new one"
            ) from None
        return card

    async def ensure_card(
        self, holder: HolderDetails, actor: Actor, *, now: dt.datetime | None = None
    ) -> CardView:
        """Automatic issuance once a person reaches L2 (identity or the demo calls this): the holder's
        live card, issued now if they have none. Idempotent; below L2 it raises ``NotEligible``."""
        async with self.pool.acquire() as connection:
            live = await connection.fetchval(
                "SELECT id FROM card.cards WHERE holder_id = $1 AND status IN ('active', 'frozen', 'lost')",
                holder.person_id,
            )
        if live is not None:
            return await self.view(live)
        try:
            return await self.issue(holder, actor, now=now)
        except CardExists:  # issued concurrently
            return await self.view_for_holder(holder.person_id)

    # --- status changes -----------------------------------------------------------------------------------

    async def freeze(self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None) -> CardView:
        return await self._change(card_id, Action.FREEZE, actor, now)

    async def unfreeze(self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None) -> CardView:
        return await self._change(card_id, Action.UNFREEZE, actor, now)

    async def report_loss(
        self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None
    ) -> CardView:
        """Idempotent: reporting a lost card again changes nothing and answers the card."""
        return await self._change(card_id, Action.REPORT_LOSS, actor, now)

    async def close(self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None) -> CardView:
        """Close the card. Its e-purse balance is refunded once the settlement window for offline
        taps has passed (``refund_due_at``; ``card.lifecycle.aftercare.run_due_refunds``), less the
        taps uploaded meanwhile, as after a reissue: never straight away."""
        return await self._change(card_id, Action.CLOSE, actor, now)

    # --- applications from the upstreams --------------------------------------------------------------------

    async def refresh_applications(
        self,
        card_id: uuid.UUID,
        actor: Actor,
        *,
        transient_only: bool = False,
        now: dt.datetime | None = None,
    ) -> CardView:
        """Look up the card's pending upstream applications again (social security, health) and
        record what changed. ``transient_only``: only those whose last look-up failed transiently."""
        return await refresh_card_applications(self, card_id, actor, transient_only, now or _utcnow())

    async def _change(
        self, card_id: uuid.UUID, action: Action, actor: Actor, now: dt.datetime | None
    ) -> CardView:
        now = now or _utcnow()
        freezer = _freezer(actor)
        async with self.pool.acquire() as connection, connection.transaction():
            card = await repo.lock_card_txn(connection, card_id)
            target = transition(action, card.status)
            _holder_may_act(card, action, freezer)
            # The service freezing a card the holder froze makes it the service's freeze: the
            # holder must not lift it, so that is a change (recorded, audited), not a no-op.
            taken_over = action is Action.FREEZE and freezer == "operator" and card.frozen_by == "holder"
            if target is card.status and action in IDEMPOTENT and not taken_over:
                return await repo.card_view(
                    connection, card_id, balance=await self._balance(connection, card_id)
                )
            await repo.set_status_txn(connection, card_id, target, now, frozen_by=freezer)
            details: dict[str, DetailValue] = {"frozen_by": freezer} if target is Status.FROZEN else {}
            if target is not card.status:  # a freeze taken over changes no list and no device
                details.update(await status_effects_txn(connection, self.settings, card, action, target, now))
            event_id = await repo.record_event_txn(
                connection,
                card_id,
                action=action.value,
                from_status=card.status,
                to_status=target,
                actor=actor,
                now=now,
                details=details,
            )
            if self.notifier is not None:
                await self.notifier(
                    connection,
                    holder_id=card.holder_id,
                    card_id=card_id,
                    card_number=card.card_number,
                    action=action,
                    event_id=event_id,
                    actor=actor,
                )
            await self._audit(
                connection,
                actor,
                action.value,
                card_id,
                {"from": card.status.value, "to": target.value, **details},
            )
            return await repo.card_view(connection, card_id, balance=await self._balance(connection, card_id))

    # --- reissue and physical cards -----------------------------------------------------------------------

    async def reissue(self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None) -> CardView:
        """A new card number for the same holder; the old purse's balance follows after the settlement
        window (``card.lifecycle.settlement.run_balance_transfers``)."""
        now = now or _utcnow()
        async with self.pool.acquire() as connection, connection.transaction():
            old = await repo.lock_card_txn(connection, card_id)
            _holder_may_act(old, Action.REISSUE, _freezer(actor))
            target = transition(Action.REISSUE, old.status)
            await repo.set_status_txn(connection, card_id, target, now)
            details = await status_effects_txn(connection, self.settings, old, Action.REISSUE, target, now)
            rows = await connection.fetch(
                "SELECT app_type, status, attributes FROM card.applications WHERE card_id = $1", card_id
            )
            purse = await connection.fetchrow(
                "SELECT overdraft_limit, concession FROM card.epurses WHERE card_id = $1", card_id
            )
            assert purse is not None
            apps = [(r["app_type"], r["status"], r["attributes"]) for r in rows]
            new = await insert_card_txn(
                connection,
                settings=self.settings,
                keys=self.keys,
                ledger=self.ledger,
                actor=actor,
                holder_id=old.holder_id,
                apps=apps,
                concession=Concession(purse["concession"]),
                overdraft_limit=purse["overdraft_limit"],
                now=now,
                replaces_id=card_id,
            )
            new_id = new.id
            due = now + dt.timedelta(days=self.settings.settlement_window_days)
            await connection.execute(
                "INSERT INTO card.balance_transfers (old_card_id, new_card_id, due_at, status)"
                " VALUES ($1, $2, $3, 'scheduled')",
                card_id,
                new_id,
                due,
            )
            details = {**details, "new_card_id": str(new_id), "balance_due_at": due.isoformat()}
            await repo.record_event_txn(
                connection,
                card_id,
                action="reissue",
                from_status=old.status,
                to_status=target,
                actor=actor,
                now=now,
                details=details,
            )
            await self._audit(connection, actor, "reissue", card_id, details)
        return await self.view(new_id)

    async def request_physical(
        self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None
    ) -> CardView:
        """Ask the card bureau for a physical card (idempotent while a request is open)."""
        now = now or _utcnow()
        async with self.pool.acquire() as connection, connection.transaction():
            card = await repo.lock_card_txn(connection, card_id)
            transition(Action.REQUEST_PHYSICAL, card.status)
            request_id = await connection.fetchval(
                "INSERT INTO card.physical_requests (id, card_id, status, requested_at)"
                " VALUES ($1, $2, 'requested', $3)"
                " ON CONFLICT (card_id) WHERE status = 'requested' DO NOTHING RETURNING id",
                uuid.uuid4(),
                card_id,
                now,
            )
            if request_id is not None:
                await repo.record_event_txn(
                    connection,
                    card_id,
                    action="request_physical",
                    from_status=card.status,
                    to_status=card.status,
                    actor=actor,
                    now=now,
                    details={"request_id": str(request_id)},
                )
                await self._audit(
                    connection, actor, "request_physical", card_id, {"request_id": str(request_id)}
                )
            return await repo.card_view(connection, card_id, balance=await self._balance(connection, card_id))

    async def _audit(
        self,
        connection: Connection,
        actor: Actor,
        action: str,
        card_id: uuid.UUID,
        details: dict[str, DetailValue],
    ) -> None:
        if self.audit is not None:
            await self.audit(connection, actor, action, card_id, details)
