"""Online load (圈存) at kiosks, reversal and balance inquiry (card-protocol.md §1.6).

LOAD: the host verifies the card's MAC1 through the key store **before** any money moves, then in
one transaction records the load and reserves the amount in the ledger (a pending transfer from
the kiosk's own clearing account to the card's e-purse: one account per kiosk, so loads at
different kiosks never wait for the same row lock), and answers MAC2. LOAD CONFIRM (the
card's TAC after CREDIT FOR LOAD) posts the reservation; REVERSAL (the card was not credited)
voids it; a load the kiosk left authorised is resolved later on the card's own evidence
(``load_resolution``). The kiosk's load id makes every step idempotent: a repeated LOAD with the
same fields gets the same MAC2, a different one is refused.

Each step's writes are one statement, run as its own transaction: the load's row (locked or
inserted), the ledger's call (``LedgerPostings.…_load_call``: one database function, which takes
the ledger's locks and reads after it holds them) and the load's update. A ledger refusal raises
inside the statement, so it rolls back whole, as the transaction it replaces did on our error;
a load is three round trips (the lookup, LOAD's statement, CONFIRM's) where the separate
statements, BEGIN and COMMIT took 22, most of a load's database time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Final

import asyncpg

from card.crypto import LoadInputs
from card.errors import KeyStoreError, UnknownKeyVersion
from card.keys import CardKeyRef
from card.terminal.host.load_evidence import LOAD_COLUMNS, OpenLoad, evidence_for
from card.terminal.host.load_reversals import reinstate_before
from card.terminal.host.ports import CARD_COLUMNS, card_info
from card.terminal.host.registry import TerminalRecord
from card.terminal.messages import (
    Balance,
    BalanceResponse,
    Load,
    LoadConfirm,
    LoadConfirmResponse,
    LoadResponse,
    Message,
    ProtocolError,
    Reversal,
    ReversalResponse,
)
from card.terminal.records import dt7
from card.terminal.spec import ResultCode, TerminalKind

if TYPE_CHECKING:
    from card.terminal.host.service import TerminalHost

__all__ = ["LoadService"]

log = logging.getLogger("citizen.terminal")

_MAX_LOAD = 1_000_00  # 1,000 yuan per load (PBOC purses hold at most a few thousand)
# With the card's reversed loads at the counter before this one that the card has not yet
# settled (migration 0103's index; almost always none): the counter moved through one of them.
_LOAD_LOOKUP_SQL: Final = (
    f"SELECT l.request_digest, l.host_time, l.mac2, l.state, {CARD_COLUMNS}, "  # noqa: S608
    "(SELECT count(*) FROM card.terminal_loads r WHERE r.app_serial = $2 "
    "AND r.online_counter = $3::integer - 1 AND r.state = 'reversed' AND r.reversal_evidence IS NULL) "
    "AS reversed_before FROM (VALUES (1)) AS one(x) "
    "LEFT JOIN card.terminal_loads l ON l.load_id = $1 "
    "LEFT JOIN (card.cards c JOIN card.epurses e ON e.card_id = c.id) ON c.app_serial = $2"
)
_TWIN_SQL: Final = "SELECT request_digest, host_time, mac2, state FROM card.terminal_loads WHERE load_id = $1"
# The load's row, and the reservation ({reserve}: $11…) only if the row is new (no row back: the
# load id or the card's counter is taken, by a concurrent twin or an earlier load that was not
# reversed: a reversed load leaves the counter to the card's next load, migration 0101).
# ON CONFLICT has no target on purpose: a target can name only one of the two unique indexes
# (the load id's key, the partial one on the card counter), and a conflict on the other would
# then raise instead of inserting nothing.
_RECORD_SQL: Final = (
    "WITH recorded AS (INSERT INTO card.terminal_loads (load_id, terminal_id, app_serial, amount, "
    "balance_before, online_counter, funding, host_time, mac2, transfer_id, state, request_digest) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $1, 'authorised', $10) ON CONFLICT DO NOTHING "
    "RETURNING load_id) SELECT {reserve} FROM recorded"
)
# The load locked (its state as it is once locked, and whether the new balance the kiosk reports
# is balance before + amount), the ledger's post ({post}: $5…) if it is authorised and the balance
# agrees, then the load confirmed and the card's online counter moved forward only, after it.
_CONFIRM_SQL: Final = (
    "WITH this_load AS MATERIALIZED (SELECT l.state, l.online_counter, e.card_id, "
    "l.balance_before + l.amount = $4 AS agrees FROM card.terminal_loads l "
    "LEFT JOIN card.cards c ON c.app_serial = l.app_serial LEFT JOIN card.epurses e ON e.card_id = c.id "
    "WHERE l.load_id = $1 AND l.terminal_id = $2 FOR UPDATE OF l), "
    "posted AS MATERIALIZED (SELECT {post} AS result FROM this_load WHERE state = 'authorised' AND agrees), "
    "confirmed AS (UPDATE card.terminal_loads SET state = 'confirmed', tac = $3, new_balance = $4, "
    "resolved_at = now() WHERE load_id = $1 AND EXISTS (SELECT FROM posted)), "
    "counter AS (UPDATE card.epurses e "
    "SET online_counter = GREATEST(e.online_counter, least(this_load.online_counter + 1, 65535)) "
    "FROM this_load WHERE e.card_id = this_load.card_id AND EXISTS (SELECT FROM posted)) "
    "SELECT state, agrees FROM this_load"
)
_REVERSAL_LOOKUP_SQL: Final = (
    f"SELECT {LOAD_COLUMNS} FROM card.terminal_loads WHERE load_id = $1 AND terminal_id = $2"  # noqa: S608
)
# The same for a reversal: the ledger's void ({void}: $3…), then the load reversed.
_REVERSE_SQL: Final = (
    "WITH this_load AS MATERIALIZED (SELECT state FROM card.terminal_loads "
    "WHERE load_id = $1 AND terminal_id = $2 FOR UPDATE), "
    "voided AS MATERIALIZED (SELECT {void} AS result FROM this_load WHERE state = 'authorised'), "
    "reversed AS (UPDATE card.terminal_loads SET state = 'reversed', resolved_at = now() "
    "WHERE load_id = $1 AND EXISTS (SELECT FROM voided)) "
    "SELECT state FROM this_load"
)


def _repeat(body: Load, row: asyncpg.Record, digest: bytes) -> LoadResponse:
    """The answer to a LOAD whose id is already recorded (``row``): its MAC2 again if it is the
    same request and the load still stands."""
    if bytes(row["request_digest"]) != digest:
        raise ProtocolError(ResultCode.LOAD_CONFLICT)
    if row["state"] == "reversed":
        raise ProtocolError(ResultCode.LOAD_STATE, "reversed")
    return LoadResponse(load_id=body.load_id, host_time=bytes(row["host_time"]), mac2=bytes(row["mac2"]))


def _digest(body: Load) -> bytes:
    return hashlib.sha256(
        b"|".join(
            (body.app_serial, body.amount.to_bytes(4, "big"), body.balance_before.to_bytes(4, "big"),
             body.online_counter.to_bytes(2, "big"), body.mac1, body.pseudo_random, body.psam_terminal_no)
        )
    ).digest()  # fmt: skip


class LoadService:
    def __init__(self, host: TerminalHost) -> None:
        self.host = host

    async def handle(self, terminal: TerminalRecord, body: Message) -> Message:
        if isinstance(body, Balance):
            return await self.balance(body)
        if terminal.kind != TerminalKind.KIOSK and isinstance(body, Load | LoadConfirm | Reversal):
            raise ProtocolError(ResultCode.NOT_ALLOWED_FOR_KIND, "only kiosks load cards")
        if isinstance(body, Load):
            return await self.load(terminal, body)
        if isinstance(body, LoadConfirm):
            return await self.confirm(terminal, body)
        if isinstance(body, Reversal):
            return await self.reverse(terminal, body)
        raise ProtocolError(ResultCode.UNKNOWN_MESSAGE_TYPE, "not a request")

    async def load(self, terminal: TerminalRecord, body: Load) -> LoadResponse:
        load_id = uuid.UUID(bytes=body.load_id)
        if not 0 < body.amount <= _MAX_LOAD:
            raise ProtocolError(ResultCode.AMOUNT_INVALID)
        if body.psam_terminal_no != terminal.psam_terminal_no:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "psam_terminal_no is not this terminal's")
        digest = _digest(body)
        async with self.host.pool.acquire() as db:
            # One round trip for the card and an earlier LOAD with this id (a repeat after a lost answer).
            row = await db.fetchrow(_LOAD_LOOKUP_SQL, load_id, body.app_serial, body.online_counter)
            assert row is not None  # the one-row VALUES side of the joins
            if row["state"] is not None:
                return _repeat(body, row, digest)
            card = card_info(row) if row["id"] is not None else None
            if card is None or card.ledger_account_id is None:
                raise ProtocolError(ResultCode.UNKNOWN_CARD)
            if card.status != "active":
                raise ProtocolError(ResultCode.CARD_BLOCKED, card.status)
        # The key store runs with no pooled connection held (it may read a master key through the
        # pool: 200 kiosks holding every connection while waiting for it would wait for ever).
        # ``load_mac2`` checks MAC1 itself before it issues MAC2: one derivation of the session key.
        if body.key_version != card.key_version:
            raise ProtocolError(ResultCode.LOAD_MAC1_INVALID, "key version")
        issuer_id = self.host.card_settings.issuer_id
        if body.issuer_id != issuer_id:  # keys are never diversified with an issuer a terminal names
            raise ProtocolError(ResultCode.LOAD_MAC1_INVALID, "issuer")
        host_time = dt7(dt.datetime.now(dt.UTC))
        try:
            mac2 = await self.host.keys.load_mac2(
                CardKeyRef(card.key_version, card.app_serial, issuer_id),
                pseudo_random=body.pseudo_random,
                online_counter=body.online_counter,
                inputs=LoadInputs(
                    balance_before=body.balance_before, amount=body.amount, terminal_no=body.psam_terminal_no
                ),
                mac1=body.mac1,
                transaction_time=host_time,
            )
        except UnknownKeyVersion:
            raise
        except KeyStoreError:
            raise ProtocolError(ResultCode.LOAD_MAC1_INVALID) from None
        reserve = self.host.ledger.reserve_load_call(
            load_id,
            operator=terminal.operator,
            terminal_id=terminal.id,
            epurse=card.ledger_account_id,
            amount=body.amount,
            first=11,
        )
        reserved = await self._ledger_statement(
            ResultCode.INSUFFICIENT_FUNDS,
            _RECORD_SQL.format(reserve=reserve.sql),
            load_id, terminal.id, body.app_serial, body.amount, body.balance_before,
            body.online_counter, body.funding, host_time, mac2, digest, *reserve.args,
        )  # fmt: skip
        if reserved is None:  # a concurrent twin, or this card counter already loaded
            # The twin's row is committed now (ON CONFLICT waited for it): the same request gets its
            # MAC2 and host time, as a repeat after a lost answer does (docs §6 step 2).
            twin = await self.host.pool.fetchrow(_TWIN_SQL, load_id)
            if twin is None:
                raise ProtocolError(ResultCode.LOAD_CONFLICT, "card counter already used")
            return _repeat(body, twin, digest)
        if row["reversed_before"]:
            await self._reinstate_before(body)
        return LoadResponse(load_id=body.load_id, host_time=host_time, mac2=mac2)

    async def _reinstate_before(self, body: Load) -> None:
        """MAC1 showed the card at ``body.online_counter``, past a reversed load at the counter
        before: the card took that credit after all (``load_reversals``). Settled here so that the
        ledger follows the card at once; a failure leaves it to the resolution job, never this LOAD."""
        try:
            await reinstate_before(self.host.pool, body.app_serial, body.online_counter)
        except asyncpg.PostgresError:
            log.exception("reversed loads of %s before online counter %d: left to the resolution job",
                          body.app_serial.hex(), body.online_counter)  # fmt: skip

    async def confirm(self, terminal: TerminalRecord, body: LoadConfirm) -> LoadConfirmResponse:
        load_id = uuid.UUID(bytes=body.load_id)
        post = self.host.ledger.resolve_load_call(load_id, post=True, first=5)
        # The load TAC layout is [uncertain] (card-protocol.md §1.6): it is kept, not verified. The
        # new balance can be checked: the card credits exactly the amount MAC2 covers onto the
        # balance MAC1 covered (§1.6). A kiosk reporting another is refused and the load stays
        # authorised: the host posts nothing on a word that contradicts itself, and the card's own
        # evidence resolves the load later (load_resolution).
        found = await self._ledger_statement(
            ResultCode.LOAD_STATE,
            _CONFIRM_SQL.format(post=post.sql),
            load_id,
            terminal.id,
            body.tac,
            body.new_balance,
            *post.args,
        )
        if found is None:
            raise ProtocolError(ResultCode.LOAD_NOT_FOUND)
        state = found["state"]
        if state not in ("authorised", "confirmed"):  # authorised: posted and confirmed now
            raise ProtocolError(ResultCode.LOAD_STATE, state)
        if not found["agrees"]:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "new_balance is not balance_before + amount")
        return LoadConfirmResponse()  # confirmed: a repeated confirmation

    async def reverse(self, terminal: TerminalRecord, body: Reversal) -> ReversalResponse:
        """Void the load's reservation on the kiosk's word that the card was not credited, unless
        the host already holds the card's evidence that it was (``load_evidence``: a later load at
        a higher online counter, or an offline record at the credited balance): such a load is
        refused ``LOAD_STATE`` "credited" and stays authorised, for the kiosk's CONFIRM or the
        resolution job. Evidence arriving after the void reinstates the load (``load_reversals``)."""
        load_id = uuid.UUID(bytes=body.load_id)
        async with self.host.pool.acquire() as db:
            row = await db.fetchrow(_REVERSAL_LOOKUP_SQL, load_id, terminal.id)
            if row is None:
                raise ProtocolError(ResultCode.LOAD_NOT_FOUND)
            if row["state"] == "authorised":
                evidence = await evidence_for(db, OpenLoad.from_row(row))
                if evidence is not None and evidence.credited:
                    log.warning("reversal of load %s refused: %s", load_id, evidence.note)
                    raise ProtocolError(ResultCode.LOAD_STATE, "credited")
        void = self.host.ledger.resolve_load_call(load_id, post=False, first=3)
        found = await self._ledger_statement(
            ResultCode.LOAD_STATE, _REVERSE_SQL.format(void=void.sql), load_id, terminal.id, *void.args
        )
        state = None if found is None else found["state"]
        if state is None:
            raise ProtocolError(ResultCode.LOAD_NOT_FOUND)
        if state not in ("authorised", "reversed"):  # authorised: voided and reversed now
            raise ProtocolError(ResultCode.LOAD_STATE, state)
        return ReversalResponse()  # reversed: a repeated reversal

    async def _ledger_statement(self, refused: ResultCode, sql: str, *args: object) -> asyncpg.Record | None:
        """One statement that moves money through the ledger's one-transfer functions, its row; a
        refusal they raise (the statement rolled back whole) is answered ``refused`` with its reason."""
        async with self.host.pool.acquire() as db:
            try:
                return await db.fetchrow(sql, *args)
            except asyncpg.PostgresError as exc:
                reason = self.host.ledger.refusal(exc)
                if reason is None:
                    raise
                raise ProtocolError(refused, reason) from None

    async def balance(self, body: Balance) -> BalanceResponse:
        async with self.host.pool.acquire() as db:
            card = (await self.host.cards.by_app_serial(db, [body.app_serial])).get(body.app_serial)
            if card is None or card.ledger_account_id is None:
                raise ProtocolError(ResultCode.UNKNOWN_CARD)
            balance = await self.host.ledger.balance(db, card.ledger_account_id)
        return BalanceResponse(balance=max(0, balance or 0))
