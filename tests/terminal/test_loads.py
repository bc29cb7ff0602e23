"""Online loads step by step over TCP: repeats, conflicts, refusals, state rules, the ledger's
rows, and what one load costs in database round trips."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import msgspec
import pytest

from card.crypto import credit_for_load_command, initialize_for_load_command, parse_load_init_response
from card.terminal.host.ports import kiosk_cash_account_id
from card.terminal.messages import (
    Load,
    LoadConfirm,
    LoadConfirmResponse,
    LoadResponse,
    Reversal,
    ReversalResponse,
)
from card.terminal.spec import ResultCode
from mock_terminals.bus import Kiosk
from mock_terminals.card import SoftwareCard
from payments.ledger import AccountFlags
from payments.ledger.check import check_ledger
from tests.terminal.conftest import Rig


def initialise(kiosk: Kiosk, card: SoftwareCard, amount: int, load_id: bytes | None = None) -> Load:
    """INITIALIZE FOR LOAD on the card, as the kiosk sends it to the host (MAC2 not yet applied)."""
    card.apdu(bytes.fromhex("00A4040008A000000632010105"))
    init = card.apdu(initialize_for_load_command(key_index=1, amount=amount, terminal_no=kiosk.terminal_no))
    info = parse_load_init_response(init[:-2])
    return Load(
        load_id=load_id or uuid.uuid4().bytes, app_serial=card.app_serial, issuer_id=card.issuer_id,
        amount=amount, balance_before=info.balance, online_counter=info.online_counter,
        key_version=info.key_version, pseudo_random=info.pseudo_random, mac1=info.mac1,
        psam_terminal_no=kiosk.terminal_no, funding="cash",
    )  # fmt: skip


def credit(card: SoftwareCard, answer: LoadResponse) -> None:
    """CREDIT FOR LOAD with the host's MAC2: the card's balance and online counter move."""
    assert answer.host_time is not None and answer.mac2 is not None
    card.apdu(credit_for_load_command(transaction_time=answer.host_time, mac2=answer.mac2))


async def confirm(kiosk: Kiosk, load_id: bytes, new_balance: int) -> LoadConfirmResponse:
    """LOAD CONFIRM with the new balance the card reports (the TAC is not checked: card-protocol §1.6)."""
    return await kiosk.link.request(
        LoadConfirm(load_id=load_id, tac=b"\x01\x02\x03\x04", new_balance=new_balance), LoadConfirmResponse
    )


async def reverse(kiosk: Kiosk, load_id: bytes) -> ReversalResponse:
    return await kiosk.link.request(Reversal(load_id=load_id, reason=1), ReversalResponse)


async def rows(rig: Rig) -> dict[str, Any]:
    async with rig.host.pool.acquire() as db:
        return {
            "loads": [tuple(r) for r in await db.fetch("SELECT load_id, state FROM card.terminal_loads")],
            "transfers": await db.fetchval("SELECT count(*) FROM payments.transfers WHERE code = 602"),
            "pending": [tuple(r) for r in await db.fetch("SELECT id, state FROM payments.pending_transfers")],
            "failed": await db.fetchval("SELECT count(*) FROM payments.failed_transfers"),
            "counter": await db.fetchval("SELECT max(online_counter) FROM card.epurses"),
            "check": await check_ledger(db),
        }


async def test_repeats_and_conflicts(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    load = initialise(kiosk, card, 700)
    first = await kiosk.link.request(load, LoadResponse)
    assert first.result == ResultCode.OK and first.mac2 is not None
    # A repeat after a lost answer: the same MAC2 and host time, nothing reserved twice.
    again = await kiosk.link.request(load, LoadResponse)
    assert (again.result, again.mac2, again.host_time) == (ResultCode.OK, first.mac2, first.host_time)
    # The same id with other fields, and the same card counter under another id: refused.
    changed = await kiosk.link.request(msgspec.structs.replace(load, amount=701), LoadResponse)
    assert changed.result == ResultCode.LOAD_CONFLICT
    twin = await kiosk.link.request(msgspec.structs.replace(load, load_id=uuid.uuid4().bytes), LoadResponse)
    assert twin.result == ResultCode.LOAD_CONFLICT
    state = await rows(rig)
    assert state["loads"] == [(uuid.UUID(bytes=load.load_id), "authorised")]
    assert state["pending"] == [(uuid.UUID(bytes=load.load_id), "pending")]
    assert state["transfers"] == 1 and state["failed"] == 0 and state["check"] == []


async def test_confirm_and_reversal_follow_the_load_state(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    other = await rig.kiosk("KIOSK-2")
    assert (await confirm(kiosk, uuid.uuid4().bytes, 0)).result == ResultCode.LOAD_NOT_FOUND
    assert (await reverse(kiosk, uuid.uuid4().bytes)).result == ResultCode.LOAD_NOT_FOUND

    confirmed = initialise(kiosk, card, 500)
    answer = await kiosk.link.request(confirmed, LoadResponse)
    assert answer.result == ResultCode.OK
    credit(card, answer)
    assert card.balance == 500
    assert (await confirm(other, confirmed.load_id, 500)).result == ResultCode.LOAD_NOT_FOUND  # not its load
    assert (await confirm(kiosk, confirmed.load_id, 500)).result == ResultCode.OK
    assert (await confirm(kiosk, confirmed.load_id, 500)).result == ResultCode.OK  # a repeat
    refused = await reverse(kiosk, confirmed.load_id)
    assert (refused.result, refused.detail) == (ResultCode.LOAD_STATE, "confirmed")
    assert (await rows(rig))["counter"] == confirmed.online_counter + 1

    reversed_ = initialise(kiosk, card, 300)  # the card's counter did not move: no CREDIT FOR LOAD
    assert (await kiosk.link.request(reversed_, LoadResponse)).result == ResultCode.OK
    assert (await reverse(kiosk, reversed_.load_id)).result == ResultCode.OK
    assert (await reverse(kiosk, reversed_.load_id)).result == ResultCode.OK  # a repeat
    late = await confirm(kiosk, reversed_.load_id, 800)
    assert (late.result, late.detail) == (ResultCode.LOAD_STATE, "reversed")
    repeat = await kiosk.link.request(reversed_, LoadResponse)
    assert (repeat.result, repeat.detail) == (ResultCode.LOAD_STATE, "reversed")

    state = await rows(rig)
    assert sorted(state["loads"], key=lambda r: r[1]) == [
        (uuid.UUID(bytes=confirmed.load_id), "confirmed"),
        (uuid.UUID(bytes=reversed_.load_id), "reversed"),
    ]
    assert sorted(state["pending"], key=lambda r: r[1]) == [
        (uuid.UUID(bytes=confirmed.load_id), "posted"),
        (uuid.UUID(bytes=reversed_.load_id), "voided"),
    ]
    assert state["transfers"] == 4 and state["failed"] == 0 and state["check"] == []
    assert state["counter"] == confirmed.online_counter + 1  # a reversal leaves it
    async with rig.host.pool.acquire() as db:
        assert await rig.host.ledger.balance(db, kiosk_cash_account_id("kiosk-co", "KIOSK-1")) == -500


async def test_the_card_loads_again_after_a_reversal(rig: Rig) -> None:
    """A reversal leaves the card's online counter where it was (the card was not credited), so
    the next INITIALIZE FOR LOAD reports the same counter: that load goes through, once."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    dropped = await kiosk.load(card, 300, drop_credit=True)
    assert dropped.result == ResultCode.OK and card.balance == 0
    loaded = await kiosk.load(card, 300)
    assert loaded.result == ResultCode.OK and card.balance == 300
    state = await rows(rig)
    assert sorted(s for _, s in state["loads"]) == ["confirmed", "reversed"]
    assert sorted(s for _, s in state["pending"]) == ["posted", "voided"]
    assert state["failed"] == 0 and state["check"] == []
    assert state["counter"] == 1  # counter 0 reversed, then loaded: the card's counter moved once
    async with rig.host.pool.acquire() as db:
        assert await rig.host.ledger.balance(db, kiosk_cash_account_id("kiosk-co", "KIOSK-1")) == -300


async def test_after_a_reversal_the_counter_is_taken_once(rig: Rig) -> None:
    """The counter a reversal leaves free has the guarantees of any other: a repeated LOAD gets
    the same MAC2, a changed one is refused, and of two LOADs sent together from two kiosks
    for it only one reserves money."""
    [card] = await rig.cards(1, balance=0)
    kiosk, other = await rig.kiosk("KIOSK-1"), await rig.kiosk("KIOSK-2")
    reversed_ = initialise(kiosk, card, 300)
    assert (await kiosk.link.request(reversed_, LoadResponse)).result == ResultCode.OK
    assert (await reverse(kiosk, reversed_.load_id)).result == ResultCode.OK

    # The same card counter from both kiosks at once (the card's counter has not moved).
    first, second = initialise(kiosk, card, 400), initialise(other, card, 400)
    assert first.online_counter == second.online_counter == reversed_.online_counter
    answers = await asyncio.gather(
        kiosk.link.request(first, LoadResponse), other.link.request(second, LoadResponse)
    )
    assert sorted(a.result for a in answers) == [ResultCode.OK, ResultCode.LOAD_CONFLICT]
    winner, answer = next((w, a) for w, a in zip((first, second), answers, strict=True) if a.result == 0)
    winner_kiosk = kiosk if winner is first else other
    again = await winner_kiosk.link.request(winner, LoadResponse)
    assert (again.result, again.mac2, again.host_time) == (ResultCode.OK, answer.mac2, answer.host_time)
    changed = await winner_kiosk.link.request(msgspec.structs.replace(winner, amount=401), LoadResponse)
    assert changed.result == ResultCode.LOAD_CONFLICT
    repeat = await kiosk.link.request(reversed_, LoadResponse)  # the reversed load stays reversed
    assert (repeat.result, repeat.detail) == (ResultCode.LOAD_STATE, "reversed")

    state = await rows(rig)
    assert sorted(state["loads"], key=lambda r: r[1]) == [
        (uuid.UUID(bytes=winner.load_id), "authorised"),
        (uuid.UUID(bytes=reversed_.load_id), "reversed"),
    ]
    assert sorted(state["pending"], key=lambda r: r[1]) == [
        (uuid.UUID(bytes=winner.load_id), "pending"),
        (uuid.UUID(bytes=reversed_.load_id), "voided"),
    ]
    assert state["failed"] == 0 and state["check"] == []


async def test_a_ledger_refusal_leaves_no_load(rig: Rig) -> None:
    """The kiosk's clearing account closed: the reservation is refused, the load is not recorded
    (the same load id goes through once the account is open again)."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    cash = kiosk_cash_account_id("kiosk-co", "KIOSK-1")
    await kiosk.link.sign_on()  # (a sign-on checks the account is as opened)
    async with rig.host.pool.acquire() as db:
        await db.execute(
            "UPDATE payments.accounts SET flags = flags | $2 WHERE id = $1", cash, AccountFlags.CLOSED
        )
    load = initialise(kiosk, card, 500)
    refused = await kiosk.link.request(load, LoadResponse)
    assert (refused.result, refused.detail) == (ResultCode.INSUFFICIENT_FUNDS, "debit_account_closed")
    state = await rows(rig)
    assert state["loads"] == [] and state["pending"] == [] and state["failed"] == 0
    async with rig.host.pool.acquire() as db:
        await db.execute("UPDATE payments.accounts SET flags = 0 WHERE id = $1", cash)
    assert (await kiosk.link.request(load, LoadResponse)).result == ResultCode.OK
    assert (await confirm(kiosk, load.load_id, load.balance_before + load.amount)).result == ResultCode.OK


async def test_a_ledger_refusal_of_the_post_changes_nothing(rig: Rig) -> None:
    """The load says authorised but its reservation was voided in the ledger meanwhile: the
    confirmation is refused with the ledger's reason and nothing moves."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    load = initialise(kiosk, card, 500)
    assert (await kiosk.link.request(load, LoadResponse)).result == ResultCode.OK
    async with rig.host.pool.acquire() as db, db.transaction():
        from payments.ledger import Transfer, TransferFlags, create_transfers_txn

        void = TransferFlags.VOID_PENDING_TRANSFER
        await create_transfers_txn(
            db, [Transfer(id=uuid.uuid4(), pending_id=uuid.UUID(bytes=load.load_id), flags=void)]
        )
    before = await rows(rig)
    refused = await confirm(kiosk, load.load_id, load.balance_before + load.amount)
    assert (refused.result, refused.detail) == (ResultCode.LOAD_STATE, "pending_transfer_already_voided")
    assert await rows(rig) == before


@contextmanager
def statements() -> Iterator[list[str]]:
    """The statements sent to PostgreSQL by this process meanwhile (BEGIN/COMMIT included)."""
    sent: list[str] = []
    connection = asyncpg.connection.Connection
    do_execute = connection._do_execute  # type: ignore[attr-defined]  # private to asyncpg: not in asyncpg-stubs
    execute = connection.execute

    async def counted_do_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return await do_execute(self, query, *args, **kwargs)

    async def counted_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # the simple-query protocol; with arguments it goes through _do_execute
            sent.append(query)
        return await execute(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection, "_do_execute", counted_do_execute)
        patch.setattr(connection, "execute", counted_execute)
        yield sent


async def test_what_a_load_costs_in_round_trips(rig: Rig) -> None:
    """Statements and BEGIN/COMMIT of one LOAD + LOAD CONFIRM (the gateway runs in this process,
    so its statements are counted here): LOAD is the lookup, then one statement with the load's
    row and the ledger's reservation; CONFIRM one statement with the row lock, the ledger's post
    and the load's update (22 when each was a statement of its own, the ledger's 7 and 9)."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    await kiosk.load(card, 100)  # sign-on and first-use statements out of the way
    with statements() as sent:
        answer = await kiosk.load(card, 100)
    assert answer.result == ResultCode.OK
    assert len(sent) == 3, sent


async def test_the_same_load_twice_at_once_gets_the_same_mac2(rig: Rig) -> None:
    """A kiosk's retry racing its first LOAD (same id, same fields): the second waits for the
    first's row and answers its MAC2 and host time, as a repeat after a lost answer (docs §6)."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    terminal = await rig.host.registry.get("KIOSK-1")
    assert terminal is not None
    load = initialise(kiosk, card, 500)
    answers = await asyncio.gather(*(rig.host.loads.load(terminal, load) for _ in range(2)))
    assert [a.result for a in answers] == [ResultCode.OK, ResultCode.OK]
    assert answers[0].mac2 == answers[1].mac2 and answers[0].host_time == answers[1].host_time
    credit(card, answers[1])
    assert card.balance == 500  # the MAC2 either answer carried is the one the card takes
    state = await rows(rig)
    assert state["loads"] == [(uuid.UUID(bytes=load.load_id), "authorised")] and state["transfers"] == 1
    # Another id at the same card counter at once is still a conflict.
    other = msgspec.structs.replace(load, load_id=uuid.uuid4().bytes)
    with pytest.raises(Exception, match="LOAD_CONFLICT"):
        await rig.host.loads.load(terminal, other)


async def test_confirm_refuses_a_new_balance_the_load_cannot_give(rig: Rig) -> None:
    """The card credits exactly the amount onto the balance MAC1 covered (card-protocol §1.6): a
    CONFIRM reporting another new balance moves nothing; the load stays authorised."""
    [card] = await rig.cards(1, balance=200)
    kiosk = await rig.kiosk("KIOSK-1")
    load = initialise(kiosk, card, 500)
    assert (await kiosk.link.request(load, LoadResponse)).result == ResultCode.OK
    before = await rows(rig)
    for wrong in (1, 500, 701):
        refused = await confirm(kiosk, load.load_id, wrong)
        assert refused.result == ResultCode.BAD_FIELD_VALUE
    assert await rows(rig) == before
    assert (await confirm(kiosk, load.load_id, 700)).result == ResultCode.OK
    assert (await confirm(kiosk, load.load_id, 701)).result == ResultCode.BAD_FIELD_VALUE  # nor on a repeat
    async with rig.host.pool.acquire() as db:
        found = await db.fetchrow("SELECT state, new_balance FROM card.terminal_loads")
    assert found is not None and tuple(found) == ("confirmed", 700)
