"""Loads the kiosk left authorised (docs/terminal-protocol.md §6): resolved on the card's own
evidence (a later load, its offline records), or listed as doubtful and resolved by an operator
through the admin API (audited); the job is re-runnable and races a kiosk's CONFIRM cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from card import cli as card_cli
from card.terminal.host.load_resolution import Outcome, resolve_open_loads, settle_load
from card.terminal.host.ports import LedgerPostings
from card.terminal.messages import LoadResponse
from card.terminal.spec import RecordReason, RecordResult, ResultCode
from identity.audit import entries_for
from mock_terminals.bus import BusReader, Kiosk
from mock_terminals.card import SoftwareCard
from payments.ledger.check import check_ledger
from tests.terminal.conftest import Rig
from tests.terminal.test_admin import _operator
from tests.terminal.test_loads import confirm, credit, initialise, reverse

API = "/api/v1/admin/terminals"


async def unconfirmed(kiosk: Kiosk, card: SoftwareCard, amount: int, *, credited: bool) -> uuid.UUID:
    """LOAD answered with MAC2, the card credited (or not), and then the kiosk says nothing more."""
    load = initialise(kiosk, card, amount)
    answer = await kiosk.link.request(load, LoadResponse)
    assert answer.result == ResultCode.OK
    if credited:
        before = card.balance
        credit(card, answer)
        assert card.balance == before + amount
    return uuid.UUID(bytes=load.load_id)


async def tap_and_upload(
    bus: BusReader, card: SoftwareCard, amount: int, *, before: bool = False
) -> tuple[int, int]:
    """One tap dated after a load made just now (records are dated to the second), or before it
    (``before``), uploaded: its result."""
    record = bus.tap(card, amount, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=-5 if before else 2))
    await bus.upload()
    return bus.results[record.terminal_serial]


async def run(rig: Rig, *, ahead: dt.timedelta = dt.timedelta(0)) -> list[Outcome]:
    return await resolve_open_loads(
        rig.host.pool,
        LedgerPostings(),
        now=dt.datetime.now(dt.UTC) + ahead,
        resolve_after=dt.timedelta(0),
        doubtful_after=dt.timedelta(hours=24),
    )


async def state(rig: Rig, load_id: uuid.UUID) -> dict[str, Any]:
    async with rig.host.pool.acquire() as db:
        row = await db.fetchrow(
            "SELECT l.state, l.resolution, l.new_balance, p.state AS pending, "
            "(SELECT count(*) FROM payments.transfers t WHERE t.code = 602 AND (t.id = l.load_id "
            "OR t.pending_id = l.load_id)) AS transfers FROM card.terminal_loads l "
            "JOIN payments.pending_transfers p ON p.id = l.load_id WHERE l.load_id = $1",
            load_id,
        )
        assert row is not None
        return {**dict(row), "check": await check_ledger(db)}


async def epurse(rig: Rig, card: SoftwareCard) -> tuple[int, int]:
    """The e-purse's ledger balance and the host's online counter of the card."""
    async with rig.host.pool.acquire() as db:
        row = await db.fetchrow(
            "SELECT e.ledger_account_id, e.online_counter FROM card.epurses e JOIN card.cards c "
            "ON c.id = e.card_id WHERE c.app_serial = $1",
            card.app_serial,
        )
        assert row is not None
        balance = await rig.host.ledger.balance(db, row["ledger_account_id"])
        return int(balance or 0), int(row["online_counter"])


async def test_credited_then_a_later_load_posts_it(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    first = await unconfirmed(kiosk, card, 500, credited=True)
    assert (await kiosk.load(card, 300)).result == ResultCode.OK  # at the card's next online counter
    outcomes = await run(rig)
    assert [(o.load.load_id, o.result) for o in outcomes] == [(first, "confirmed")]
    found = await state(rig, first)
    assert (found["state"], found["pending"], found["new_balance"]) == ("confirmed", "posted", 500)
    assert "online counter 1" in found["resolution"] and found["check"] == []
    assert await epurse(rig, card) == (800, 2)
    assert await run(rig) == []  # again: nothing left to do
    # The kiosk's late word: a confirmation is a repeat; a reversal comes too late.
    assert (await confirm(kiosk, first.bytes, 500)).result == ResultCode.OK
    late = await reverse(kiosk, first.bytes)
    assert (late.result, late.detail) == (ResultCode.LOAD_STATE, "confirmed")


async def test_credited_then_offline_taps_post_it(rig: Rig) -> None:
    """The card spent the credit the ledger held pending: its taps were refused into suspense;
    the first one's balance before proves the credit."""
    cards = await rig.cards(2, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    bus = await rig.bus("BUS-1", cards)
    first = await unconfirmed(kiosk, cards[0], 500, credited=True)
    assert await tap_and_upload(bus, cards[0], 200) == (RecordResult.REJECTED, RecordReason.LEDGER_REFUSED)
    # A card with purchases before: the record before the load's continues into it.
    [funded] = await rig.cards(1, balance=1_000)
    bus.psam.card_keys[funded.app_serial] = funded.dpk
    assert (await tap_and_upload(bus, funded, 100, before=True))[0] == RecordResult.ACCEPTED
    second = await unconfirmed(kiosk, funded, 500, credited=True)
    assert (await tap_and_upload(bus, funded, 200))[0] == RecordResult.ACCEPTED
    outcomes = {o.load.load_id: o for o in await run(rig)}
    assert {k: o.result for k, o in outcomes.items()} == {first: "confirmed", second: "confirmed"}
    assert "balance before 500" in outcomes[first].detail
    assert "balance before 1400" in outcomes[second].detail
    for load_id in (first, second):
        found = await state(rig, load_id)
        assert (found["state"], found["pending"], found["check"]) == ("confirmed", "posted", [])
    assert await epurse(rig, cards[0]) == (500, 1)  # the refused tap stays in suspense for operators
    assert await epurse(rig, funded) == (1_200, 1)
    assert await run(rig) == []


async def test_not_credited_then_offline_taps_void_it(rig: Rig) -> None:
    [card] = await rig.cards(1, balance=1_000)
    kiosk = await rig.kiosk("KIOSK-1")
    bus = await rig.bus("BUS-1", [card])
    assert (await tap_and_upload(bus, card, 100, before=True))[0] == RecordResult.ACCEPTED
    dropped = await unconfirmed(kiosk, card, 500, credited=False)  # no CREDIT, no REVERSAL
    assert (await tap_and_upload(bus, card, 200))[0] == RecordResult.ACCEPTED
    [outcome] = await run(rig)
    assert (outcome.load.load_id, outcome.result) == (dropped, "reversed")
    assert "not credited" in outcome.detail
    found = await state(rig, dropped)
    assert (found["state"], found["pending"], found["check"]) == ("reversed", "voided", [])
    assert await epurse(rig, card) == (700, 0)
    late = await confirm(kiosk, dropped.bytes, 1_200)  # the session is gone: the card cannot take MAC2
    assert (late.result, late.detail) == (ResultCode.LOAD_STATE, "reversed")
    # The counter is free again: the card loads.
    assert (await kiosk.load(card, 300)).result == ResultCode.OK
    assert await epurse(rig, card) == (1_000, 1)


async def test_first_purchase_without_the_credit_voids_it(rig: Rig) -> None:
    """The card's first purchase (counter 0): no record can be missing before it."""
    [card] = await rig.cards(1, balance=1_000)
    kiosk = await rig.kiosk("KIOSK-1")
    bus = await rig.bus("BUS-1", [card])
    dropped = await unconfirmed(kiosk, card, 500, credited=False)
    assert (await tap_and_upload(bus, card, 200))[0] == RecordResult.ACCEPTED
    assert [o.result for o in await run(rig)] == ["reversed"]
    assert (await state(rig, dropped))["state"] == "reversed"


async def test_a_missing_record_is_no_evidence(rig: Rig) -> None:
    """A tap after the load not uploaded yet could have spent the credit: the next record's
    balance before would then look like no credit. Nothing is resolved on it."""
    [card] = await rig.cards(1, balance=1_000)
    kiosk = await rig.kiosk("KIOSK-1")
    bus = await rig.bus("BUS-1", [card])
    assert (await tap_and_upload(bus, card, 100, before=True))[0] == RecordResult.ACCEPTED
    credited = await unconfirmed(kiosk, card, 500, credited=True)
    held = bus.tap(card, 500, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))  # kept on the reader
    bus.queue.pop(held.terminal_serial)
    assert (await tap_and_upload(bus, card, 100))[0] == RecordResult.ACCEPTED  # balance before 900
    assert [o.result for o in await run(rig)] == ["open"]
    bus.queue[held.terminal_serial] = held  # the reader uploads it later: the credit is proved
    await bus.upload()
    assert [o.result for o in await run(rig)] == ["confirmed"]
    assert (await state(rig, credited))["check"] == []


async def test_no_evidence_is_doubtful_and_an_operator_resolves_it(
    rig: Rig, client: AsyncTestClient[Litestar], settings: Settings, db: Any
) -> None:
    [card, other] = await rig.cards(2, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    credited = await unconfirmed(kiosk, card, 500, credited=True)
    young = await unconfirmed(kiosk, other, 400, credited=False)
    assert {o.result for o in await run(rig)} == {"open"}
    assert {o.result for o in await run(rig, ahead=dt.timedelta(hours=25))} == {"doubtful"}
    assert (await state(rig, credited))["state"] == "authorised"  # never voided silently
    await db.execute(
        "UPDATE card.terminal_loads SET created_at = created_at - interval '25 hours' WHERE load_id = $1",
        credited,
    )
    support = await _operator(client, settings, db, "support")
    auditor = await _operator(client, settings, db, "auditor")
    listed = await client.get(f"{API}/loads/doubtful", headers=auditor)
    assert listed.status_code == 200 and [d["load_id"] for d in listed.json()] == [str(credited)]
    body = {"action": "post", "note": "kiosk journal: card credited, TAC 01020304"}
    refused = await client.post(f"{API}/loads/{credited}/resolve", json=body, headers=auditor)
    assert refused.status_code == 403
    too_young = await client.post(f"{API}/loads/{young}/resolve", json=body, headers=support)
    assert too_young.status_code == 409
    bad = await client.post(
        f"{API}/loads/{credited}/resolve", json={**body, "action": "undo"}, headers=support
    )
    assert bad.status_code == 422
    done = await client.post(f"{API}/loads/{credited}/resolve", json=body, headers=support)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "confirmed"
    again = await client.post(
        f"{API}/loads/{credited}/resolve", json={**body, "action": "void"}, headers=support
    )
    assert again.status_code == 409  # resolved: nothing moves twice

    found = await state(rig, credited)
    assert (found["state"], found["pending"], found["check"]) == ("confirmed", "posted", [])
    assert found["resolution"].startswith("operator ") and "kiosk journal" in found["resolution"]
    assert await epurse(rig, card) == (500, 1)
    assert (await client.get(f"{API}/loads/doubtful", headers=auditor)).json() == []
    entries = [(e.action, e.outcome) for e in reversed(await entries_for(db, "KIOSK-1"))]
    assert entries == [
        ("card.terminal.load.post", "failure"),  # the young one
        ("card.terminal.load.post", "success"),
        ("card.terminal.load.void", "failure"),
    ]


async def test_an_operator_cannot_go_against_the_evidence(
    rig: Rig, client: AsyncTestClient[Litestar], settings: Settings, db: Any
) -> None:
    [card] = await rig.cards(1, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    credited = await unconfirmed(kiosk, card, 500, credited=True)
    assert (await kiosk.load(card, 100)).result == ResultCode.OK
    await db.execute("UPDATE card.terminal_loads SET created_at = created_at - interval '25 hours'")
    support = await _operator(client, settings, db, "support")
    body = {"action": "void", "note": "the citizen says the kiosk failed"}
    refused = await client.post(f"{API}/loads/{credited}/resolve", json=body, headers=support)
    assert refused.status_code == 409 and "evidence" in refused.text
    assert (await state(rig, credited))["state"] == "authorised"


async def test_the_job_races_the_kiosk_cleanly(rig: Rig) -> None:
    """The kiosk's CONFIRM (or REVERSAL) and the job at the same moment: one of them resolves the
    load, the other finds it resolved; the ledger moves once."""
    [card, other] = await rig.cards(2, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    for _ in range(5):
        load_id = await unconfirmed(kiosk, card, 100, credited=True)
        credited = card.balance
        assert (await kiosk.load(card, 100)).result == ResultCode.OK  # the evidence
        answer, outcomes = await asyncio.gather(confirm(kiosk, load_id.bytes, credited), run(rig))
        assert answer.result == ResultCode.OK
        assert [o.result for o in outcomes if o.load.load_id == load_id] in ([], ["confirmed"], ["resolved"])
        found = await state(rig, load_id)
        assert (found["state"], found["pending"], found["transfers"], found["check"]) == (
            "confirmed", "posted", 2, [],
        )  # fmt: skip
    for _ in range(5):  # a post against a reversal: exactly one wins
        load_id = await unconfirmed(kiosk, other, 100, credited=False)
        reversal, settled = await asyncio.gather(
            reverse(kiosk, load_id.bytes),
            settle_load(rig.host.pool, LedgerPostings(), load_id, post=True, resolution="test"),
        )
        found = await state(rig, load_id)
        if settled == "authorised":
            assert (reversal.result, reversal.detail) == (ResultCode.LOAD_STATE, "confirmed")
            assert (found["state"], found["pending"]) == ("confirmed", "posted")
            break  # the card's counter moved on the host: the next loads of ``other`` differ
        assert reversal.result == ResultCode.OK and settled == "reversed"
        assert (found["state"], found["pending"], found["transfers"], found["check"]) == (
            "reversed", "voided", 2, [],
        )  # fmt: skip


async def test_the_job_from_the_command_line(rig: Rig, settings: Settings) -> None:
    [card, other] = await rig.cards(2, balance=0)
    kiosk = await rig.kiosk("KIOSK-1")
    credited = await unconfirmed(kiosk, card, 500, credited=True)
    assert (await kiosk.load(card, 100)).result == ResultCode.OK
    waiting = await unconfirmed(kiosk, other, 300, credited=True)
    resolved = settings.replace(
        terminal=msgspec.structs.replace(settings.terminal, load_resolve_after_seconds=0.0)
    )
    code, [line] = await card_cli.resolve_loads(rig.host.pool, resolved, as_json=True)
    summary = json.loads(line)
    assert code == 0 and summary["counts"] == {"confirmed": 1, "open": 1}
    assert {d["load_id"]: d["result"] for d in summary["loads"]} == {
        str(credited): "confirmed", str(waiting): "open",
    }  # fmt: skip
    code, lines = await card_cli.resolve_loads(rig.host.pool, resolved)
    assert code == 0 and lines[-1] == "open loads: 1 (1 open)" and str(waiting) in lines[0]
    async with rig.host.pool.acquire() as db:
        assert await check_ledger(db) == []
