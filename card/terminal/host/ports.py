"""Where the terminal host meets its neighbours: the card tables, the blacklist, the ledger, fares.

Each neighbour is reached through one class here, so joining a neighbour's final interface is a
change to this file only:

* key store — ``card.keys.CardKeyStore`` (the card issue's HSM-like store), used as it is;
* cards — :class:`CardDirectory`, a read of ``card.cards`` joined with ``card.epurses`` (the card
  issue's tables) by application serial or card number;
* blacklist — ``card.terminal.host.blacklist_reader.BlacklistReader``, a read of
  ``card.blacklist_head/entries/changes`` (a module of its own: the paged download);
* ledger — :class:`LedgerPostings`: taps through ``payments.posting.post_purchases`` (the payments
  issue's posting interface; idempotent per card/counter, inside our transaction); a load is a
  two-phase ``payments.ledger`` transfer (the kiosk's cash clearing account → e-purse) reserved
  when MAC2 is issued, posted on the card's confirmation and voided on reversal (``post_loads``
  has no reversal, so loads use the ledger's pending transfers directly, one transfer per call,
  inside the load's own statement: ``payments.ledger.reserve_call`` / ``resolve_call``). Each
  kiosk has its own clearing account: the ledger locks both accounts of a transfer to the
  commit, so one account per operator serialised every load in the city on one row (measured:
  49 loads/s, p99 5.7 s at 200 kiosks); a kiosk serves one card at a time, so its own account
  is never contended;
* fares — :class:`Fares`: the operators' versioned fare tables through ``payments.fares``
  (``terminal_fare_table`` for the parameter download, ``current_fare_table`` at a ride's time
  for re-rating).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from card._db import Connection, Pool
from payments import posting
from payments.fares import FareTable, TerminalFareTable, current_fare_table, line_fare, terminal_fare_table
from payments.ledger import (
    Account,
    AccountCode,
    LedgerCall,
    Transfer,
    TransferFlags,
    TransferResult,
    create_accounts,
    create_transfers,
    create_transfers_txn,
    lookup_balances,
    refusal,
    reserve_call,
    resolve_call,
)

__all__ = [
    "CARD_COLUMNS",
    "TRANSFER_CODE_LOAD",
    "TRANSFER_CODE_TAP",
    "CardDirectory",
    "CardInfo",
    "FareRater",
    "Fares",
    "LedgerPostings",
    "card_info",
    "fund_test_purses",
    "kiosk_cash_account_id",
    "operator_account_id",
    "reinstate_load_txn",
]

_NAMESPACE: Final = uuid.UUID("6f1c8a52-0c1e-4a7e-9f7e-3c2b8c1d9e10")
TRANSFER_CODE_TAP: Final = 601  # an offline tap (purchase, compound exit, QR ride)
TRANSFER_CODE_LOAD: Final = 602  # an online load at a kiosk


# --- cards ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardInfo:
    card_id: uuid.UUID
    card_number: str
    app_serial: bytes
    status: str
    key_version: int
    ledger_account_id: uuid.UUID | None


CARD_COLUMNS: Final = "c.id, c.card_number, c.app_serial, c.status, e.key_version, e.ledger_account_id"
_CARD_SQL: Final = f"SELECT {CARD_COLUMNS} FROM card.cards c JOIN card.epurses e ON e.card_id = c.id "  # noqa: S608


def card_info(r: asyncpg.Record) -> CardInfo:
    """A :class:`CardInfo` from a row with the columns of ``CARD_COLUMNS``."""
    return CardInfo(
        card_id=r["id"],
        card_number=str(r["card_number"]),
        app_serial=bytes(r["app_serial"]),
        status=str(r["status"]),
        key_version=int(r["key_version"]),
        ledger_account_id=r["ledger_account_id"],
    )


class CardDirectory:
    async def by_app_serial(self, db: Connection, serials: Iterable[bytes]) -> dict[bytes, CardInfo]:
        rows = await db.fetch(_CARD_SQL + "WHERE c.app_serial = ANY($1::bytea[])", list(set(serials)))
        return {bytes(r["app_serial"]): card_info(r) for r in rows}

    async def by_number(self, db: Connection, numbers: Iterable[str]) -> dict[str, CardInfo]:
        rows = await db.fetch(_CARD_SQL + "WHERE c.card_number = ANY($1::text[])", list(set(numbers)))
        return {str(r["card_number"]): card_info(r) for r in rows}

    async def advance_counters_txn(
        self,
        db: Connection,
        offline: Sequence[tuple[uuid.UUID, int]],
        online: Sequence[tuple[uuid.UUID, int]],
    ) -> None:
        """The card-side counters the host has seen (``card.epurses``), moved forward only."""
        if offline:
            await db.execute(
                "UPDATE card.epurses e SET offline_counter = GREATEST(e.offline_counter, least(v.c, 65535)) "
                "FROM (SELECT card_id, max(c) AS c FROM unnest($1::uuid[], $2::int[]) AS t(card_id, c) "
                "GROUP BY card_id) v WHERE e.card_id = v.card_id",
                [c for c, _ in offline],
                [n for _, n in offline],
            )
        if online:
            await db.execute(
                "UPDATE card.epurses e SET online_counter = GREATEST(e.online_counter, least(v.c, 65535)) "
                "FROM unnest($1::uuid[], $2::int[]) AS v(card_id, c) WHERE e.card_id = v.card_id",
                [c for c, _ in online],
                [n for _, n in online],
            )


# --- ledger ------------------------------------------------------------------------------------------------


def operator_account_id(operator: str, purpose: str = "payable") -> uuid.UUID:
    if purpose == "payable":
        return posting.operator_account_id(operator)
    return uuid.uuid5(_NAMESPACE, f"operator:{operator}:{purpose}")


def kiosk_cash_account_id(operator: str, terminal_id: str) -> uuid.UUID:
    """The clearing account of one kiosk's takings (its cash box): debited by its loads."""
    return uuid.uuid5(_NAMESPACE, f"operator:{operator}:kiosk-cash:{terminal_id}")


# The fleets' control account (uuid5 of "control:test-fleet" in the fleet's namespace, as it always was).
_TEST_CONTROL: Final = uuid.UUID("2f7ed1cf-69ce-5400-9c8c-434b1e298c6a")


async def fund_test_purses(pool: Pool, epurses: Sequence[uuid.UUID], balance: int) -> None:
    """Development and test fleets (``fleet``): ``balance`` fen onto each e-purse from a control
    account, once (each opening transfer's id derives from its e-purse)."""
    await create_accounts(
        pool, [Account(id=_TEST_CONTROL, code=AccountCode.CONTROL, reference="control:test-fleet")]
    )
    transfers = [
        Transfer(
            id=uuid.uuid5(a, "opening"), debit_account_id=_TEST_CONTROL, credit_account_id=a, amount=balance
        )
        for a in epurses
    ]
    for i in range(0, len(transfers), 5000):
        await create_transfers(pool, transfers[i : i + 5000])


async def reinstate_load_txn(
    db: Connection, load_id: uuid.UUID, *, operator: str, terminal_id: str, epurse: uuid.UUID, amount: int
) -> str | None:
    """Post a reversed load after all (``load_reversals``): a second, posted transfer from the
    kiosk's clearing account to the e-purse, its id derived from the load's so that it can move the
    money only once. None when posted (now or before), else the ledger's refusal."""
    transfer = Transfer(
        id=uuid.uuid5(load_id, "reinstated"),
        debit_account_id=kiosk_cash_account_id(operator, terminal_id),
        credit_account_id=epurse,
        amount=amount,
        code=TRANSFER_CODE_LOAD,
        reference=f"load:{load_id}:reinstated",
    )
    [result] = await create_transfers_txn(db, [transfer])
    return None if result in (TransferResult.OK, TransferResult.EXISTS) else result.value


class LedgerPostings:
    async def ensure_operator_accounts_txn(self, db: Connection, operator: str) -> None:
        await posting.open_operator(db, operator)
        accounts = [
            Account(
                id=operator_account_id(operator, "kiosk-cash"),
                code=AccountCode.CHANNEL_CLEARING,
                reference=f"operator:{operator}:kiosk-cash",
            ),
        ]
        await create_accounts(db, accounts)

    async def ensure_kiosk_account(self, db: Pool | Connection, operator: str, terminal_id: str) -> None:
        """Open the kiosk's clearing account (idempotent): at registration, and at every kiosk
        sign-on for kiosks registered before kiosks had their own."""
        account = Account(
            id=kiosk_cash_account_id(operator, terminal_id),
            code=AccountCode.CHANNEL_CLEARING,
            user_data_128=operator_account_id(operator, "kiosk-cash"),  # the operator's roll-up
            reference=f"operator:{operator}:kiosk-cash:{terminal_id}",
        )
        [result] = await create_accounts(db, [account])
        if not result.succeeded():
            raise RuntimeError(f"kiosk clearing account for {terminal_id}: {result}")

    async def post_taps_txn(
        self, db: Connection, taps: Sequence[posting.PurchasePosting]
    ) -> list[posting.PostingResult]:
        """One transfer per tap inside the caller's transaction (a savepoint); results in order."""
        return await posting.post_purchases(db, taps) if taps else []

    async def post_held_tap_txn(
        self,
        db: Connection,
        *,
        card_id: uuid.UUID,
        counter: int,
        amount: int,
        operator: str,
        occurred_at: dt.datetime,
        terminal_id: str,
        epurse: uuid.UUID,
    ) -> tuple[uuid.UUID, str | None]:
        """A tap the suspense queue held, posted now (an operator accepted it) inside the caller's
        transaction, as the batch upload would have posted it: the same transfer id, one per card
        transaction. Its transfer id, and None when this call posted it, else the ledger's result
        (``exists…`` too: the ledger already holds this card transaction, so this acceptance must
        not be what charges it).

        A tap the e-purse refused at its upload (``LEDGER_REFUSED``) left that id failed, and the
        ledger keeps a failed id failed for ever (``id_already_failed``): it is then posted under an
        id derived from that one, which can in turn move the money only once."""
        purchase = posting.PurchasePosting(
            card_id=str(card_id),
            counter=counter,
            amount=amount,
            operator=operator,
            occurred_at=occurred_at,
            terminal_id=terminal_id,
            epurse_account_id=epurse,
        )
        [result] = await posting.post_purchases(db, [purchase])
        transfer_id, outcome = result.transfer_id, result.result
        if outcome is TransferResult.ID_ALREADY_FAILED:
            transfer = Transfer(
                id=uuid.uuid5(result.transfer_id, "accepted"),
                debit_account_id=epurse,
                credit_account_id=posting.operator_account_id(operator),
                amount=amount,
                code=posting.TRANSFER_CODES["purchase"],  # a purchase like any other, for settlement
                user_data_64=int(occurred_at.timestamp() * 1000),
                user_data_32=counter,
                reference=f"purchase:{card_id}:{counter}@{terminal_id}:accepted",
            )
            [outcome] = await create_transfers(db, [transfer])
            transfer_id = transfer.id
        return transfer_id, None if outcome is TransferResult.OK else outcome.value

    def reserve_load_call(
        self,
        load_id: uuid.UUID,
        *,
        operator: str,
        terminal_id: str,
        epurse: uuid.UUID,
        amount: int,
        first: int,
    ) -> LedgerCall:
        """The ledger's reservation of a load as a SQL expression (placeholders from ``$first``),
        for the load's own statement: its row and the reservation in one round trip. It gives
        ``ok``/``exists``; a refusal raises (``refusal`` reads the reason), so that statement
        rolls back whole."""
        transfer = Transfer(
            id=load_id,
            debit_account_id=kiosk_cash_account_id(operator, terminal_id),
            credit_account_id=epurse,
            amount=amount,
            code=TRANSFER_CODE_LOAD,
            flags=int(TransferFlags.PENDING),
            reference=f"load:{load_id}",
        )
        return _one_statement(reserve_call(transfer, first=first, refuse=True), transfer)

    def resolve_load_call(self, load_id: uuid.UUID, *, post: bool, first: int) -> LedgerCall:
        """The post (``post``) or void of a load's reservation, as ``reserve_load_call``."""
        flag = TransferFlags.POST_PENDING_TRANSFER if post else TransferFlags.VOID_PENDING_TRANSFER
        transfer = Transfer(
            id=uuid.uuid5(load_id, "post" if post else "void"),
            pending_id=load_id,
            code=TRANSFER_CODE_LOAD,
            flags=int(flag),
        )
        return _one_statement(resolve_call(transfer, first=first, refuse=True), transfer)

    @staticmethod
    def refusal(exc: BaseException) -> str | None:
        """The ledger's reason when ``exc`` is a refused ``…_load_call``, else None."""
        result = refusal(exc)
        return None if result is None else result.value

    async def balance(self, db: Connection, account: uuid.UUID) -> int | None:
        balances = await lookup_balances(db, [account])
        found = balances.get(account)
        return None if found is None else found.credit_balance


def _one_statement(call: LedgerCall | None, transfer: Transfer) -> LedgerCall:
    if call is None:  # a load's amount is checked positive and its two accounts differ
        raise ValueError(f"not a transfer the ledger takes in one statement: {transfer}")
    return call


# --- fares -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FareRater:
    """The fare of a ride by the operator's table in effect at the tap time (``None``: no table)."""

    tables: dict[dt.datetime, FareTable | None]  # by tap time, or one entry under ``_ANY`` for all

    def fare(
        self, at: dt.datetime, line: str | None, entry_stop: int | None, exit_stop: int | None
    ) -> tuple[int, int] | None:
        """``(fare, table version)`` before concessions and discounts, or ``None`` without a table."""
        table = self.tables[_ANY] if _ANY in self.tables else self.tables.get(at)
        if table is None:
            return None
        return line_fare(table, line, entry_stop, exit_stop), table.version


_ANY: Final = dt.datetime.min.replace(tzinfo=dt.UTC)


class Fares:
    """The operators' versioned fare tables (``payments.fares``, published by the payments issue).

    Terminals download the table in effect now (``for_operator``, cached ``ttl`` seconds per
    gateway: a newly published version reaches the heartbeat answers within that time); uploaded
    rides are re-rated by the table in effect at each ride's tap time (``rater``), read per batch.
    """

    def __init__(self, *, ttl: float = 30.0) -> None:
        self._ttl = ttl
        self._current: dict[str, tuple[float, TerminalFareTable | None]] = {}
        self._at: dict[tuple[str, dt.datetime], tuple[float, FareTable | None]] = {}

    async def for_operator(self, db: Pool | Connection, operator: str) -> TerminalFareTable | None:
        now = time.monotonic()
        cached = self._current.get(operator)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        table = await terminal_fare_table(db, operator)
        self._current[operator] = (now, table)
        return table

    async def version(self, db: Pool | Connection, operator: str) -> int:
        table = await self.for_operator(db, operator)
        return table.version if table is not None else 0

    async def rater(self, db: Connection, operator: str, times: Sequence[dt.datetime]) -> FareRater:
        if not times:
            return FareRater({_ANY: None})
        first = await self._in_effect(db, operator, min(times))
        last = await self._in_effect(db, operator, max(times))
        if (first and first.version) == (last and last.version):
            return FareRater({_ANY: last})  # the usual case: one table over the whole batch
        # A new version took effect during the batch's rides: each ride by its own time.
        return FareRater({at: await current_fare_table(db, operator, at=at) for at in set(times)})

    async def _in_effect(self, db: Connection, operator: str, at: dt.datetime) -> FareTable | None:
        """The table in effect at ``at``, cached ``ttl`` seconds by the minute: every batch of a
        busy line asks for the same few minutes. A ride in the very minute a new version takes
        effect may be re-rated by its neighbour: re-rating raises follow-ups, it refuses nothing."""
        key = (operator, at.replace(second=0, microsecond=0))
        now = time.monotonic()
        cached = self._at.get(key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        table = await current_fare_table(db, operator, at=at)
        if len(self._at) >= 4096:
            self._at.clear()  # bounded; refilled by the next batches
        self._at[key] = (now, table)
        return table
