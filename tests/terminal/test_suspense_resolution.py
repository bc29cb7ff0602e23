"""The suspense queue resolved by operators (docs/terminal-protocol.md §5.4) through the admin API:
reject writes a record off; accept charges a held card debit exactly once, only for the reasons that
allow it and only after the stored record passes the host's checks again; two operators at once:
one wins; every resolution and every refusal audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from card.audit import Actor
from card.terminal.host.ports import operator_account_id
from card.terminal.host.suspense import SuspenseResolved, SuspenseResolver
from card.terminal.host.suspense_records import decode_record
from card.terminal.messages.fields import encode_body
from card.terminal.spec import RecordReason, RecordResult, Tag
from card.terminal.tlv import TLV, encode
from identity.audit import entries_for, verify_chain
from mock_terminals.bus import BusReader
from mock_terminals.card import SoftwareCard
from payments.ledger.check import check_ledger
from tests.terminal.conftest import Rig
from tests.terminal.test_admin import _operator
from tests.terminal.test_load_resolution import run, unconfirmed

API = "/api/v1/admin/terminals"
Client = AsyncTestClient[Litestar]
NOTE = {"note": "reader clock was an hour fast; the card signed the debit"}


async def held(bus: BusReader, card: SoftwareCard, amount: int, reason: RecordReason) -> int:
    """One tap that the host holds in suspense for ``reason``: its terminal serial."""
    now = dt.datetime.now(dt.UTC)
    when = now + dt.timedelta(hours=1) if reason is RecordReason.CLOCK_DRIFT else now
    record = bus.tap(card, amount, when)
    if reason is RecordReason.BAD_TAC:
        bus.queue[record.terminal_serial] = msgspec.structs.replace(record, tac=bytes(4))
    await bus.upload()
    assert bus.results[record.terminal_serial] == (RecordResult.REJECTED, reason)
    return record.terminal_serial


async def money(rig: Rig, card: SoftwareCard, operator: str = "bus-co") -> tuple[int, int]:
    """The card's e-purse balance and the operator's payable, from the ledger (fen)."""
    async with rig.host.pool.acquire() as db:
        epurse = await db.fetchval(
            "SELECT e.ledger_account_id FROM card.epurses e JOIN card.cards c ON c.id = e.card_id "
            "WHERE c.app_serial = $1",
            card.app_serial,
        )
        purse = await rig.host.ledger.balance(db, epurse)
        payable = await rig.host.ledger.balance(db, operator_account_id(operator))
        assert await check_ledger(db) == []
    return int(purse or 0), int(payable or 0)


async def entry(db: Any, terminal_id: str, serial: int) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT s.state, s.decision, s.resolution, s.resolved_by, s.resolved_at, r.status, r.transfer_id "
        "FROM card.terminal_suspense s JOIN card.terminal_records r USING (terminal_id, terminal_serial) "
        "WHERE s.terminal_id = $1 AND s.terminal_serial = $2",
        terminal_id,
        serial,
    )
    assert row is not None
    return dict(row)


async def offline_counter(db: Any, card: SoftwareCard) -> int:
    return int(
        await db.fetchval(
            "SELECT e.offline_counter FROM card.epurses e JOIN card.cards c ON c.id = e.card_id "
            "WHERE c.app_serial = $1",
            card.app_serial,
        )
    )


def resolve_url(terminal_id: str, serial: int) -> str:
    return f"{API}/suspense/{terminal_id}/{serial}/resolve"


async def audited(db: Any, terminal_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    found = reversed(await entries_for(db, terminal_id))
    return [(e.outcome, str(e.details.get("refused", "")), e.details) for e in found
            if e.action == "card.terminal.suspense.resolve"]  # fmt: skip


async def test_reject_writes_the_record_off(rig: Rig, client: Client, settings: Settings, db: Any) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-R", [card])
    serial = await held(bus, card, 150, RecordReason.BAD_TAC)
    before = await money(rig, card)
    support = await _operator(client, settings, db, "support")
    listed = await client.get(f"{API}/suspense", headers=support)
    assert [(e["terminal_serial"], e["state"], e["acceptable"]) for e in listed.json()] == [
        (serial, "open", False)
    ]
    done = await client.post(
        resolve_url("BUS-R", serial), json={"decision": "reject", **NOTE}, headers=support
    )
    assert done.status_code == 200, done.text
    assert (done.json()["decision"], done.json()["record_status"], done.json()["transfer_id"]) == (
        "reject", "suspended", None,
    )  # fmt: skip
    found = await entry(db, "BUS-R", serial)
    assert (found["state"], found["decision"], found["resolution"], found["status"]) == (
        "resolved", "reject", NOTE["note"], "suspended",
    )  # fmt: skip
    assert found["resolved_by"] is not None and found["resolved_at"] is not None
    assert await money(rig, card) == before  # nothing charged
    assert (await client.get(f"{API}/suspense", headers=support)).json() == []  # open only, by default
    resolved = (await client.get(f"{API}/suspense", params={"state": "resolved"}, headers=support)).json()
    assert [(e["decision"], e["resolution"], e["resolved_by"]) for e in resolved] == [
        ("reject", NOTE["note"], found["resolved_by"])
    ]
    assert len((await client.get(f"{API}/suspense", params={"state": "all"}, headers=support)).json()) == 1
    bad = await client.get(f"{API}/suspense", params={"state": "closed"}, headers=support)
    assert bad.status_code == 422
    again = await client.post(
        resolve_url("BUS-R", serial), json={"decision": "reject", **NOTE}, headers=support
    )
    assert (again.status_code, again.json()["type"]) == (409, "/problems/suspense-resolved")
    assert [(o, r) for o, r, _ in await audited(db, "BUS-R")] == [
        ("success", ""), ("failure", "suspense-resolved"),
    ]  # fmt: skip
    [(_, _, details), _] = await audited(db, "BUS-R")
    assert details == {
        "serial": serial, "decision": "reject", "reason": "BAD_TAC", "amount": 150,
        "note_sha256": hashlib.sha256(NOTE["note"].encode()).hexdigest(),  # never the text itself
    }  # fmt: skip


async def test_accepting_a_clock_drift_record_charges_the_fare_once(
    rig: Rig, client: Client, settings: Settings, db: Any
) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-C", [card])
    serial = await held(bus, card, 150, RecordReason.CLOCK_DRIFT)
    counter = await offline_counter(db, card)
    purse, payable = await money(rig, card)
    assert purse == 1_000
    admin = await _operator(client, settings, db, "security_admin")
    [listed] = (await client.get(f"{API}/suspense", headers=admin)).json()
    assert listed["acceptable"] is True and listed["reason"] == RecordReason.CLOCK_DRIFT
    done = await client.post(resolve_url("BUS-C", serial), json={"decision": "accept", **NOTE}, headers=admin)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert (answer["decision"], answer["record_status"], answer["amount"]) == ("accept", "accepted", 150)
    assert await money(rig, card) == (purse - 150, payable + 150)  # exactly the fare, once
    found = await entry(db, "BUS-C", serial)
    assert (found["state"], found["decision"], found["status"]) == ("resolved", "accept", "accepted")
    assert found["transfer_id"] == uuid.UUID(answer["transfer_id"])
    transfer = await db.fetchrow("SELECT amount FROM payments.transfers WHERE id = $1", found["transfer_id"])
    assert transfer is not None and int(transfer["amount"]) == 150
    assert (counter, await offline_counter(db, card)) == (0, 1)  # moved past the accepted debit
    for decision in ("accept", "reject"):  # resolved: nothing moves twice
        again = await client.post(
            resolve_url("BUS-C", serial), json={"decision": decision, **NOTE}, headers=admin
        )
        assert (again.status_code, again.json()["type"]) == (409, "/problems/suspense-resolved")
    assert await money(rig, card) == (purse - 150, payable + 150)
    outcomes = await audited(db, "BUS-C")
    assert [(o, r) for o, r, _ in outcomes] == [
        ("success", ""), ("failure", "suspense-resolved"), ("failure", "suspense-resolved"),
    ]  # fmt: skip
    assert outcomes[0][2]["transfer_id"] == answer["transfer_id"] and outcomes[0][2]["amount"] == 150
    assert (await verify_chain(db)).ok


@pytest.mark.parametrize("reason", [RecordReason.BAD_TAC, RecordReason.DUPLICATE_CARD_COUNTER])
async def test_only_business_holds_can_be_accepted(
    rig: Rig, client: Client, settings: Settings, db: Any, reason: RecordReason
) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-N", [card])
    if reason is RecordReason.DUPLICATE_CARD_COUNTER:
        first = bus.tap(card, 100, dt.datetime.now(dt.UTC))
        second = bus.tap(card, 150, dt.datetime.now(dt.UTC))
        bus.queue[second.terminal_serial] = msgspec.structs.replace(second, card_counter=first.card_counter)
        await bus.upload()
        serial = second.terminal_serial
        assert bus.results[serial] == (RecordResult.REJECTED, reason)
    else:
        serial = await held(bus, card, 150, reason)
    before = await money(rig, card)
    support = await _operator(client, settings, db, "support")
    refused = await client.post(
        resolve_url("BUS-N", serial), json={"decision": "accept", **NOTE}, headers=support
    )
    assert (refused.status_code, refused.json()["type"]) == (409, "/problems/suspense-not-acceptable")
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await entry(db, "BUS-N", serial))["state"] == "open"
    assert await money(rig, card) == before
    assert [(o, r) for o, r, _ in await audited(db, "BUS-N")] == [("failure", "suspense-not-acceptable")]
    rejected = await client.post(
        resolve_url("BUS-N", serial), json={"decision": "reject", **NOTE}, headers=support
    )
    assert rejected.status_code == 200


async def stored(db: Any, terminal_id: str, serial: int) -> bytes:
    """The record's TLV as stored."""
    return bytes(
        await db.fetchval(
            "SELECT record FROM card.terminal_records WHERE terminal_id = $1 AND terminal_serial = $2",
            terminal_id,
            serial,
        )
    )


async def _tamper(db: Any, terminal_id: str, serial: int, *, record: bytes, amount: int) -> None:
    await db.execute(
        "UPDATE card.terminal_records SET record = $3, amount = $4 "
        "WHERE terminal_id = $1 AND terminal_serial = $2",
        terminal_id, serial, record, amount,
    )  # fmt: skip


async def test_a_record_altered_in_the_database_is_never_accepted(
    rig: Rig, client: Client, settings: Settings, db: Any
) -> None:
    """The accept re-verifies the stored TLV's TAC: a record whose amount was raised in the
    database (its TLV and its column alike) does not verify; nor do columns that differ from the
    TLV, nor bytes that do not decode."""
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-T", [card])
    serial = await held(bus, card, 150, RecordReason.CLOCK_DRIFT)
    raw = await stored(db, "BUS-T", serial)
    original = decode_record(raw)
    assert original is not None and original.amount == 150
    forged = encode(TLV(Tag.ITEM, encode_body(msgspec.structs.replace(original, amount=900))))
    before = await money(rig, card)
    support = await _operator(client, settings, db, "support")
    body = {"decision": "accept", **NOTE}
    for record, amount, why in [(forged, 900, "BAD_TAC"), (raw, 900, "MALFORMED"), (raw[:-3], 150, "decode")]:
        await _tamper(db, "BUS-T", serial, record=record, amount=amount)
        refused = await client.post(resolve_url("BUS-T", serial), json=body, headers=support)
        assert (refused.status_code, refused.json()["type"]) == (409, "/problems/suspense-record-unverified")
        assert why in refused.json()["detail"]
        found = await entry(db, "BUS-T", serial)
        assert (found["state"], found["status"], found["transfer_id"]) == ("open", "suspended", None)
        assert await money(rig, card) == before
    await _tamper(db, "BUS-T", serial, record=raw, amount=150)  # as the terminal sent it: accepted
    done = await client.post(resolve_url("BUS-T", serial), json=body, headers=support)
    assert done.status_code == 200, done.text
    assert await money(rig, card) == (before[0] - 150, before[1] + 150)
    assert [r for _, r, _ in await audited(db, "BUS-T")] == ["suspense-record-unverified"] * 3 + [""]


async def test_two_operators_at_once_one_wins(rig: Rig) -> None:
    """Accept against accept, and accept against reject, at the same moment: exactly one resolves
    the entry, the other is refused as resolved; the fare is charged at most once."""
    cards = await rig.cards(4, balance=1_000)
    bus = await rig.bus("BUS-X", cards)
    resolver = SuspenseResolver(rig.host.registry, rig.host.keys, rig.host.card_settings)
    alice, bob = (Actor(kind="operator", id=str(uuid.uuid4())) for _ in range(2))
    for i, card in enumerate(cards):
        serial = await held(bus, card, 150, RecordReason.CLOCK_DRIFT)
        other = "accept" if i % 2 else "reject"
        results = await asyncio.gather(
            resolver.resolve("BUS-X", serial, decision="accept", note="first", actor=alice),
            resolver.resolve("BUS-X", serial, decision=other, note="second", actor=bob),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1 and len(lost) == 1 and isinstance(lost[0], SuspenseResolved), results
        charged = 150 if won[0].decision == "accept" else 0
        assert (await money(rig, card))[0] == 1_000 - charged
        async with rig.host.pool.acquire() as db:
            found = await entry(db, "BUS-X", serial)
        assert found["decision"] == won[0].decision
        assert found["status"] == ("accepted" if charged else "suspended")


async def test_a_card_transaction_already_accepted_is_not_charged_again(
    rig: Rig, client: Client, settings: Settings, db: Any
) -> None:
    """The held record's (card, counter, type) was accepted meanwhile from another record (a
    reader reporting a later debit under that counter): the partial unique index refuses the
    accept. With the type moved aside, the ledger, which holds one transfer per card
    transaction, refuses it all the same."""
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-D", [card])
    serial = await held(bus, card, 150, RecordReason.CLOCK_DRIFT)
    held_record = decode_record(await stored(db, "BUS-D", serial))
    assert held_record is not None
    later = bus.tap(card, 100, dt.datetime.now(dt.UTC))
    bus.queue[later.terminal_serial] = msgspec.structs.replace(later, card_counter=held_record.card_counter)
    await bus.upload()
    assert bus.results[later.terminal_serial] == (RecordResult.ACCEPTED, 0)  # the TAC does not cover it
    before = await money(rig, card)
    support = await _operator(client, settings, db, "support")
    body = {"decision": "accept", **NOTE}
    refused = await client.post(resolve_url("BUS-D", serial), json=body, headers=support)
    assert (refused.status_code, refused.json()["type"]) == (409, "/problems/suspense-card-counter-taken")
    await db.execute(
        "UPDATE card.terminal_records SET txn_type = 9 WHERE terminal_id = 'BUS-D' AND terminal_serial = $1",
        later.terminal_serial,
    )
    refused = await client.post(resolve_url("BUS-D", serial), json=body, headers=support)
    assert (refused.status_code, refused.json()["type"]) == (409, "/problems/suspense-card-counter-taken")
    assert "ledger" in refused.json()["detail"]
    found = await entry(db, "BUS-D", serial)
    assert (found["state"], found["status"]) == ("open", "suspended")
    assert await money(rig, card) == before
    assert [r for _, r, _ in await audited(db, "BUS-D")] == ["suspense-card-counter-taken"] * 2


async def test_a_ledger_refusal_changes_nothing_until_the_purse_can_pay(
    rig: Rig, client: Client, settings: Settings, db: Any
) -> None:
    """The card holds a credit the ledger still has pending (the kiosk never confirmed the load):
    its tap is refused by the e-purse. Accepted once the load is settled on that evidence."""
    [card] = await rig.cards(1, balance=0)
    bus = await rig.bus("BUS-L", [card])
    kiosk = await rig.kiosk("KIOSK-L")
    await unconfirmed(kiosk, card, 500, credited=True)
    serial = await held(bus, card, 200, RecordReason.LEDGER_REFUSED)
    support = await _operator(client, settings, db, "support")
    body = {"decision": "accept", "note": "the citizen topped up; charge the ride"}
    refused = await client.post(resolve_url("BUS-L", serial), json=body, headers=support)
    assert (refused.status_code, refused.json()["type"]) == (409, "/problems/suspense-ledger-refused")
    assert "exceeds_credits" in refused.json()["detail"]
    found = await entry(db, "BUS-L", serial)
    assert (found["state"], found["status"], found["transfer_id"]) == ("open", "suspended", None)
    assert await money(rig, card) == (0, 0)
    assert [o.result for o in await run(rig)] == ["confirmed"]  # the refused tap proves the credit
    done = await client.post(resolve_url("BUS-L", serial), json=body, headers=support)
    assert done.status_code == 200, done.text
    assert await money(rig, card) == (300, 200)
    assert [r for _, r, _ in await audited(db, "BUS-L")] == ["suspense-ledger-refused", ""]


async def test_roles_and_requests(rig: Rig, client: Client, settings: Settings, db: Any) -> None:
    [card] = await rig.cards(1, balance=1_000)
    bus = await rig.bus("BUS-P", [card])
    serial = await held(bus, card, 150, RecordReason.CLOCK_DRIFT)
    url = resolve_url("BUS-P", serial)
    body = {"decision": "accept", **NOTE}
    assert (await client.post(url, json=body)).status_code == 401
    auditor = await _operator(client, settings, db, "auditor")
    assert (await client.get(f"{API}/suspense", headers=auditor)).status_code == 200  # reads
    assert (await client.post(url, json=body, headers=auditor)).status_code == 403  # never resolves
    support = await _operator(client, settings, db, "support")
    for bad in ({"decision": "maybe", **NOTE}, {"decision": "accept", "note": "  "},
                {"decision": "accept", "note": "x" * 501}):  # fmt: skip
        refused = await client.post(url, json=bad, headers=support)
        assert (refused.status_code, refused.json()["type"]) == (422, "/problems/validation-error")
    extra = await client.post(url, json={**body, "amount": 1}, headers=support)
    assert extra.status_code == 422  # unknown fields are refused
    missing = await client.post(resolve_url("BUS-P", serial + 1), json=body, headers=support)
    assert (missing.status_code, missing.json()["type"]) == (404, "/problems/suspense-not-found")
    nowhere = await client.post(resolve_url("bus-p", serial), json=body, headers=support)
    assert (nowhere.status_code, nowhere.json()["type"]) == (404, "/problems/suspense-not-found")
    assert (await entry(db, "BUS-P", serial))["state"] == "open"
    assert [r for _, r, _ in await audited(db, "BUS-P")] == ["validation-error"] * 3 + ["suspense-not-found"]
    refusals = await db.fetch(
        "SELECT target_id, details FROM identity.audit_events WHERE action = 'card.terminal.suspense.resolve'"
        " AND target_id IS NULL"
    )
    assert [json.loads(r["details"])["refused"] for r in refusals] == [
        "suspense-not-found"
    ]  # a bad id: no target
    done = await client.post(url, json=body, headers=support)
    assert done.status_code == 200, done.text
