"""Reversals against the card's evidence (docs/terminal-protocol.md §6, §6.2): a REVERSAL the
host's records already contradict is refused; a reversed load the card later shows it took is
reinstated (by the next LOAD, or by the resolution job), audited; several reversed loads at one
counter are left doubtful for the operators; a true reversal is upheld. The kiosk asks the card
(GET TRANSACTION PROVE) before it reverses."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from card.audit import Actor
from card.terminal.host.load_resolution import doubtful_loads, resolve_by_operator
from card.terminal.host.ports import LedgerPostings, kiosk_cash_account_id
from card.terminal.messages import LoadResponse
from card.terminal.spec import RecordReason, RecordResult, ResultCode
from identity.audit import entries_for
from mock_terminals.card import SoftwareCard
from payments.ledger.check import check_ledger
from tests.terminal.conftest import Rig
from tests.terminal.test_load_resolution import epurse, run, tap_and_upload
from tests.terminal.test_loads import confirm, credit, initialise, reverse


async def loaded(rig: Rig, card: SoftwareCard) -> dict[str, Any]:
    """What the host holds of the card's loads, and whether the ledger agrees with the card."""
    balance, counter = await epurse(rig, card)
    async with rig.host.pool.acquire() as db:
        loads = await db.fetch(
            "SELECT load_id, state, resolution, reversal_evidence, reversal_doubt FROM card.terminal_loads "
            "WHERE app_serial = $1",
            card.app_serial,
        )
        return {
            "ledger": balance,
            "card": card.balance,
            "counter": (counter, card.online_counter),
            "loads": {r["load_id"]: dict(r) for r in loads},
            "check": await check_ledger(db),
        }


async def test_a_reversal_is_refused_when_a_later_load_shows_the_credit(rig: Rig) -> None:
    """KIOSK-1 credits the card and dies before CONFIRM; the card loads again at KIOSK-2 (its
    online counter one on); KIOSK-1 comes back and reverses: the host's own records say no."""
    [card] = await rig.cards(1, balance=0)
    first, second = await rig.kiosk("KIOSK-1"), await rig.kiosk("KIOSK-2")
    a = initialise(first, card, 500)
    answer = await first.link.request(a, LoadResponse)
    credit(card, answer)
    b = initialise(second, card, 300)
    assert b.online_counter == a.online_counter + 1
    credit(card, await second.link.request(b, LoadResponse))
    assert (await confirm(second, b.load_id, 800)).result == ResultCode.OK
    refused = await reverse(first, a.load_id)
    assert (refused.result, refused.detail) == (ResultCode.LOAD_STATE, "credited")
    found = await loaded(rig, card)
    assert found["loads"][uuid.UUID(bytes=a.load_id)]["state"] == "authorised"  # nothing voided
    # KIOSK-1's CONFIRM (it asked the card) or the job posts it.
    assert (await confirm(first, a.load_id, 500)).result == ResultCode.OK
    found = await loaded(rig, card)
    assert (found["ledger"], found["card"], found["check"]) == (800, 800, [])


async def test_a_load_past_a_reversed_one_reinstates_it(rig: Rig) -> None:
    """The torn case: the card took the credit, the kiosk got no answer and reversed (as the old
    §6 told it). The card's next LOAD, at the next online counter, proves the credit: the reversed
    load is posted after all, flagged in its resolution and audited."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    a = initialise(kiosk, card, 500)
    credit(card, await kiosk.link.request(a, LoadResponse))
    assert (await reverse(kiosk, a.load_id)).result == ResultCode.OK  # no evidence yet: voided
    assert (await loaded(rig, card))["ledger"] == 0
    b = initialise(kiosk, card, 300)
    answer = await kiosk.link.request(b, LoadResponse)
    assert answer.result == ResultCode.OK
    credit(card, answer)
    assert (await confirm(kiosk, b.load_id, 800)).result == ResultCode.OK

    found = await loaded(rig, card)
    assert (found["ledger"], found["card"], found["counter"], found["check"]) == (800, 800, (2, 2), [])
    reinstated = found["loads"][uuid.UUID(bytes=a.load_id)]
    assert reinstated["state"] == "confirmed"
    assert "reversal is contradicted, reinstated" in reinstated["resolution"]
    assert str(uuid.UUID(bytes=b.load_id)) in reinstated["resolution"]
    async with rig.host.pool.acquire() as db:
        assert await rig.host.ledger.balance(db, kiosk_cash_account_id("kiosk-co", "KIOSK-1")) == -800
        found_entries = await entries_for(db, "KIOSK-1")
        entries = [(e.action, e.actor_kind, e.details.get("amount")) for e in found_entries]
    assert ("card.terminal.load.reinstate", "system", 500) in entries
    # Late words change nothing: the kiosk's repeated reversal, the job.
    late = await reverse(kiosk, a.load_id)
    assert (late.result, late.detail) == (ResultCode.LOAD_STATE, "confirmed")
    assert await run(rig) == []
    assert (await loaded(rig, card))["ledger"] == 800


async def test_the_job_reinstates_a_reversal_the_cards_taps_contradict(rig: Rig) -> None:
    """No later load, but the card spends the credit the ledger no longer backs: its tap is refused
    into suspense, and its balance before proves the credit."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    bus = await rig.bus("BUS-1", [card])
    a = initialise(kiosk, card, 500)
    credit(card, await kiosk.link.request(a, LoadResponse))
    assert (await reverse(kiosk, a.load_id)).result == ResultCode.OK
    assert await run(rig) == []  # no evidence yet: a reversal with nothing to say is not reported
    assert await tap_and_upload(bus, card, 200) == (RecordResult.REJECTED, RecordReason.LEDGER_REFUSED)
    [outcome] = await run(rig)
    assert (outcome.load.load_id, outcome.result) == (uuid.UUID(bytes=a.load_id), "reinstated")
    assert "balance before 500" in outcome.detail
    found = await loaded(rig, card)
    assert (found["ledger"], found["check"]) == (500, [])  # the refused tap stays in suspense
    assert found["loads"][uuid.UUID(bytes=a.load_id)]["state"] == "confirmed"
    assert await run(rig) == []


async def test_a_true_reversal_is_upheld_and_left_alone(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    a = initialise(kiosk, card, 500)
    assert (await kiosk.link.request(a, LoadResponse)).result == ResultCode.OK  # never credited
    assert (await reverse(kiosk, a.load_id)).result == ResultCode.OK
    assert (await kiosk.load(card, 300)).result == ResultCode.OK  # the same online counter again
    [outcome] = await run(rig)
    assert (outcome.load.load_id, outcome.result) == (uuid.UUID(bytes=a.load_id), "upheld")
    found = await loaded(rig, card)
    assert (found["ledger"], found["card"], found["check"]) == (300, 300, [])
    assert "same online counter 0" in found["loads"][uuid.UUID(bytes=a.load_id)]["reversal_evidence"]
    assert await run(rig) == []  # settled: not looked at again
    assert (await kiosk.load(card, 100)).result == ResultCode.OK
    assert (await loaded(rig, card))["ledger"] == 400


async def test_two_reversed_loads_at_one_counter_are_doubtful_for_operators(rig: Rig, db: Any) -> None:
    """Two reversals at one online counter and the card past it: it took one of them, the host
    cannot tell which. Nothing moves on its own; an operator posts the one the kiosk's journal
    shows (audited), and the other is upheld."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    dropped = initialise(kiosk, card, 400)  # the card was pulled before CREDIT FOR LOAD
    assert (await kiosk.link.request(dropped, LoadResponse)).result == ResultCode.OK
    assert (await reverse(kiosk, dropped.load_id)).result == ResultCode.OK
    torn = initialise(kiosk, card, 500)
    assert torn.online_counter == dropped.online_counter
    credit(card, await kiosk.link.request(torn, LoadResponse))
    assert (await reverse(kiosk, torn.load_id)).result == ResultCode.OK
    assert (await kiosk.load(card, 300)).result == ResultCode.OK  # proves one credit at counter 0
    found = await loaded(rig, card)
    assert (found["ledger"], found["card"]) == (300, 800)
    ids = [uuid.UUID(bytes=dropped.load_id), uuid.UUID(bytes=torn.load_id)]
    assert all("only one of which" in found["loads"][i]["reversal_doubt"] for i in ids)
    assert {o.result for o in await run(rig)} == {"doubtful"}
    listed = await doubtful_loads(rig.host.pool, older_than=dt.datetime.now(dt.UTC))
    assert sorted((str(d.load_id), d.state) for d in listed) == sorted((str(i), "reversed") for i in ids)

    operator, day = Actor(kind="operator", id="op-1"), dt.timedelta(hours=24)
    await resolve_by_operator(
        rig.host.pool, LedgerPostings(), ids[1], post=True, note="journal: TAC seen", actor=operator,
        doubtful_after=day,
    )  # fmt: skip
    await resolve_by_operator(
        rig.host.pool, LedgerPostings(), ids[0], post=False, note="journal: card pulled", actor=operator,
        doubtful_after=day,
    )  # fmt: skip
    found = await loaded(rig, card)
    assert (found["ledger"], found["card"], found["check"]) == (800, 800, [])
    assert [found["loads"][i]["state"] for i in ids] == ["reversed", "confirmed"]
    assert found["loads"][ids[0]]["reversal_evidence"].startswith("operator op-1: ")
    assert await doubtful_loads(rig.host.pool, older_than=dt.datetime.now(dt.UTC)) == []
    actions = [(e.action, e.outcome) for e in await entries_for(db, "KIOSK-1")]
    assert ("card.terminal.load.post", "success") in actions
    assert ("card.terminal.load.void", "success") in actions
    assert await run(rig) == []


async def test_the_kiosk_asks_the_card_before_it_reverses(rig: Rig) -> None:
    """No answer to CREDIT FOR LOAD: the kiosk sends GET TRANSACTION PROVE for the load (online
    counter + 1, type 02). The card has it: LOAD CONFIRM with its TAC. ``9406``: REVERSAL."""
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    torn = await kiosk.load(card, 500, tear_credit=True)  # the card took it; its answer was lost
    assert (type(torn).__name__, torn.result) == ("LoadConfirmResponse", ResultCode.OK)
    dropped = await kiosk.load(card, 300, drop_credit=True)  # the card never saw CREDIT FOR LOAD
    assert (type(dropped).__name__, dropped.result) == ("ReversalResponse", ResultCode.OK)
    found = await loaded(rig, card)
    assert (found["ledger"], found["card"], found["counter"], found["check"]) == (500, 500, (1, 1), [])
    assert sorted(r["state"] for r in found["loads"].values()) == ["confirmed", "reversed"]
    async with rig.host.pool.acquire() as db:
        tac = await db.fetchval("SELECT tac FROM card.terminal_loads WHERE state = 'confirmed'")
    assert tac is not None and bytes(tac) == card._proofs[(0x02, 1)].tac
