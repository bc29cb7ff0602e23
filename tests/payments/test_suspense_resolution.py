"""Resolving reconciliation's suspense items: the admin API (roles, checks, at most once, audit)
and the ``citizen payments suspense`` commands."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from payments.clearing.audit import Actor
from payments.clearing.reconcile import reconcile_channel
from payments.clearing.suspense import (
    Resolution,
    ResolveSuspense,
    SuspenseItemResolved,
    list_items,
    resolve_item,
)
from payments.cli import cli_actor
from tests.identity.conftest import operator_headers
from tests.payments.channel_helpers import channel_faults
from tests.payments.conftest import Topups
from tests.payments.test_cli import _citizen
from tests.payments.test_topup import app, citizen, client, pay_and_notify  # noqa: F401

ADMIN = "/api/v1/admin/payments/suspense"
CHINA = dt.timezone(dt.timedelta(hours=8))


async def _operator(t: Topups, role: str) -> dict[str, str]:
    return await operator_headers(t.client, t.settings, t.db, role, prefix="suspense")


async def _reconcile(t: Topups, channel: str, day: dt.date) -> None:
    async with t.service() as service:
        await reconcile_channel(service.pool, service.connectors[channel], day)


async def _resolve(
    http: AsyncTestClient[Litestar],
    headers: dict[str, str],
    item: dict[str, Any],
    resolution: str,
    **more: Any,
) -> httpx.Response:
    body = {"resolution": resolution, "note": more.pop("note", "checked against the channel's bill"), **more}
    return await http.post(f"{ADMIN}/{item['id']}/resolve", json=body, headers=headers)


async def _items(http: AsyncTestClient[Litestar], headers: dict[str, str], **params: str) -> list[Any]:
    response = await http.get(ADMIN, params=params, headers=headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def _notify(t: Topups, channel: str, delivery: dict[str, Any]) -> None:
    answer = await t.client.post(
        f"/api/v1/payments/notify/{channel}", content=delivery["body"].encode(), headers=delivery["headers"]
    )
    assert answer.status_code in {200, 204}, answer.text


async def test_payment_items_are_listed_and_each_resolved_as_the_facts_allow(topups: Topups) -> None:
    t = topups
    for _ in range(4):
        await t.notified("alipay")
    async with httpx.AsyncClient() as control:
        await channel_faults(control, t.urls["alipay"], drop=1, extra=1, amount=1)
    late = await pay_and_notify(t.client, t.citizen, t.urls, "unionpay", 3000)  # paid, not yet notified
    today = dt.datetime.now(CHINA).date()
    await _reconcile(t, "alipay", today)
    await _reconcile(t, "unionpay", today)
    auditor, support = await _operator(t, "auditor"), await _operator(t, "support")

    listed = await _items(t.client, auditor)
    assert sorted((i["channel"], i["kind"]) for i in listed) == [
        ("alipay", "amount_mismatch"),
        ("alipay", "channel_only"),
        ("alipay", "platform_only"),
        ("unionpay", "channel_only"),
    ]
    assert {i["state"] for i in listed} == {"open"} and {i["business_date"] for i in listed} == {str(today)}
    assert len(await _items(t.client, auditor, channel="unionpay")) == 1
    assert await _items(t.client, auditor, business_date=str(today - dt.timedelta(days=1))) == []
    by = {(i["channel"], i["kind"]): i for i in listed}
    extra, dropped = by["alipay", "channel_only"], by["alipay", "platform_only"]
    mismatch, unionpay = by["alipay", "amount_mismatch"], by["unionpay", "channel_only"]
    assert (mismatch["platform_amount"], mismatch["channel_amount"]) == (5000, 5100)
    assert (unionpay["order_no"], unionpay["channel_amount"]) == (late["order"]["order_no"], 3000)

    # Auditors read, they do not resolve; citizens do neither.
    assert (await _resolve(t.client, auditor, dropped, "written_off")).status_code == 403
    assert (await t.client.get(ADMIN, headers=t.citizen)).status_code == 403

    # A payment the channel lists that we never ordered: no order of ours was credited.
    refused = await _resolve(t.client, support, extra, "credited_late")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/problems/suspense-resolution-refused"
    no_reference = await _resolve(t.client, support, extra, "channel_refunded")
    assert no_reference.status_code == 422
    assert no_reference.json()["type"] == "/problems/suspense-resolution-invalid"
    done = await _resolve(t.client, support, extra, "channel_refunded", reference="ALI-RF-0001")
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["reference"]) == ("resolved", "ALI-RF-0001")

    # Paid through UnionPay while our order missed the notification: credited_late only once credited.
    not_yet = await _resolve(t.client, support, unionpay, "credited_late")
    assert not_yet.status_code == 409 and "not been credited" in not_yet.json()["detail"]
    await _notify(t, "unionpay", late["delivery"])
    credited = await _resolve(t.client, support, unionpay, "credited_late")
    assert credited.status_code == 200, credited.text
    again = await _resolve(t.client, support, unionpay, "written_off")
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/suspense-item-resolved"
    assert again.json()["resolution"] == "credited_late"

    # Our paid order the channel left out: no counterpart on another day, so not a timing difference.
    assert (await _resolve(t.client, support, dropped, "timing_difference")).status_code == 409
    assert (await _resolve(t.client, support, dropped, "written_off", note="  ")).status_code == 422
    written = await _resolve(t.client, support, dropped, "written_off", note="channel confirms it lost it")
    assert written.status_code == 200

    # An amount mismatch is never closed by a late credit, only by the channel's correction (or a write-off).
    wrong_kind = await _resolve(t.client, support, mismatch, "credited_late")
    assert wrong_kind.status_code == 409 and "does not close" in wrong_kind.json()["detail"]
    corrected = await _resolve(
        t.client,
        support,
        mismatch,
        "channel_corrected",
        reference="ALI-ADJ-7",
        note="amended bill of the day",
    )
    assert corrected.status_code == 200
    assert (corrected.json()["resolution"], corrected.json()["note"]) == (
        "channel_corrected",
        "amended bill of the day",
    )
    unknown = await t.client.post(
        f"{ADMIN}/{uuid.uuid4()}/resolve", json={"resolution": "written_off", "note": "x"}, headers=support
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "/problems/suspense-item-not-found"
    bad = await t.client.post(
        f"{ADMIN}/{extra['id']}/resolve", json={"resolution": "forgiven", "note": "x"}, headers=support
    )
    assert bad.status_code in {400, 422}

    assert await _items(t.client, auditor) == []
    resolved = await _items(t.client, auditor, state="resolved")
    assert len(resolved) == 4 and await _items(t.client, auditor, state="all") == resolved
    assert {i["resolution"] for i in resolved} == {
        "channel_refunded",
        "credited_late",
        "written_off",
        "channel_corrected",
    }
    assert all(i["resolved_at"] and i["resolved_by"] for i in resolved)
    stored = await t.db.fetch("SELECT state, resolution, note FROM payments.suspense_items")
    assert {(r["state"], r["resolution"]) for r in stored} == {
        ("resolved", i["resolution"]) for i in resolved
    }

    events = await t.db.fetch(
        "SELECT actor_kind, actor_id, target_kind, target_id, outcome, details FROM identity.audit_events "
        "WHERE action = 'payments.suspense.resolve' ORDER BY occurred_at"
    )
    outcomes = [(e["outcome"], json.loads(e["details"]).get("refused")) for e in events]
    assert outcomes == [
        ("failure", "suspense-resolution-refused"),
        ("failure", "suspense-resolution-invalid"),
        ("success", None),
        ("failure", "suspense-resolution-refused"),
        ("success", None),
        ("failure", "suspense-item-resolved"),
        ("failure", "suspense-resolution-refused"),
        ("failure", "suspense-resolution-invalid"),
        ("success", None),
        ("failure", "suspense-resolution-refused"),
        ("success", None),
        ("failure", "suspense-item-not-found"),
    ]
    assert {(e["actor_kind"], e["target_kind"]) for e in events} == {("operator", "suspense_item")}
    resolvers = {i["resolved_by"] for i in resolved}
    assert len(resolvers) == 1 and {e["actor_id"] for e in events} == resolvers
    [credited_event] = [
        json.loads(e["details"])
        for e in events
        if e["outcome"] == "success" and e["target_id"] == unionpay["id"]
    ]
    assert credited_event["evidence"].startswith("order credited at ")
    assert credited_event | {"evidence": None} == {
        "resolution": "credited_late",
        "kind": "channel_only",
        "refund": False,
        "channel": "unionpay",
        "business_date": str(today),
        "platform_amount": None,
        "channel_amount": 3000,
        "evidence": None,
    }
    assert not any(late["order"]["order_no"] in e["details"] for e in events)  # no order numbers logged
    reads = await t.db.fetchval(
        "SELECT count(*) FROM identity.audit_events "
        "WHERE action = 'payments.suspense.list' AND outcome = 'success'"
    )
    assert reads == 6


async def _our_refund(
    db: Any, order_id: str, refund_no: str, amount: int, state: str, at: dt.datetime
) -> None:
    # Our refund record as payments.topup.refunds leaves it; how it got there is not under test.
    await db.execute(
        "INSERT INTO payments.refunds (id, refund_no, order_id, amount, reason, state, transfer_id, "
        "created_at, completed_at) VALUES ($1, $2, $3, $4, 'test', $5, $1, $6::timestamptz, "
        "CASE WHEN $5 IN ('succeeded', 'failed') THEN $6::timestamptz END)",
        uuid.uuid4(), refund_no, uuid.UUID(order_id), amount, state, at,
    )  # fmt: skip


async def test_timing_differences_need_the_other_day_and_late_outcomes_their_refund(topups: Topups) -> None:
    t = topups
    today = dt.datetime.now(CHINA).date()
    yesterday = today - dt.timedelta(days=1)
    yesterday_noon = dt.datetime.combine(yesterday, dt.time(12), CHINA)
    # A payment we dated yesterday (just before midnight) that the channel lists today.
    paid, _ = await t.notified("alipay")
    await t.db.execute(
        "UPDATE payments.topup_orders SET paid_at = $2 WHERE id = $1",
        uuid.UUID(paid["id"]),
        dt.datetime.combine(yesterday, dt.time(23, 59, 59), CHINA),
    )
    # Refunds of a WeChat Pay top-up: one we asked for yesterday that the channel dates today, one
    # still without an outcome on our side that the channel has paid back.
    order, _ = await t.notified("wechatpay")
    tag = uuid.uuid4().hex[:8].upper()
    await _our_refund(t.db, order["id"], f"RF{tag}LATE", 1000, "succeeded", yesterday_noon)
    await _our_refund(t.db, order["id"], f"RF{tag}OPEN", 500, "requested", dt.datetime.now(dt.UTC))
    async with t.service() as service:
        for refund_no, amount in ((f"RF{tag}LATE", 1000), (f"RF{tag}OPEN", 500)):
            assert await service.connectors["wechatpay"].refund(order["order_no"], refund_no, amount, 5000)
    await _reconcile(t, "alipay", yesterday)
    await _reconcile(t, "wechatpay", yesterday)
    admin = await _operator(t, "security_admin")
    [ours_only] = await _items(t.client, admin, channel="alipay")
    [refund_ours] = await _items(t.client, admin, channel="wechatpay")
    assert (ours_only["kind"], ours_only["business_date"]) == ("platform_only", str(yesterday))
    assert (refund_ours["kind"], refund_ours["refund_no"]) == ("platform_only", f"RF{tag}LATE")
    # Until today is reconciled, nothing shows the channel listing either of them.
    assert (await _resolve(t.client, admin, ours_only, "timing_difference")).status_code == 409
    assert (await _resolve(t.client, admin, refund_ours, "timing_difference")).status_code == 409

    await _reconcile(t, "alipay", today)
    await _reconcile(t, "wechatpay", today)
    [theirs_only] = await _items(t.client, admin, channel="alipay", business_date=str(today))
    [refund_theirs] = await _items(t.client, admin, channel="wechatpay", business_date=str(today))
    assert (theirs_only["kind"], theirs_only["order_no"]) == ("channel_only", paid["order_no"])
    assert (refund_theirs["refund_no"], refund_theirs["platform_state"]) == (f"RF{tag}OPEN", "requested")
    # One resolution closes both sides of the payment's midnight, each naming the other.
    paired = await _resolve(t.client, admin, ours_only, "timing_difference", note="dated either side")
    assert paired.status_code == 200, paired.text
    assert paired.json()["counterpart_id"] == theirs_only["id"]
    [other] = await _items(t.client, admin, channel="alipay", business_date=str(today), state="resolved")
    assert (other["id"], other["resolution"], other["counterpart_id"]) == (
        theirs_only["id"],
        "timing_difference",
        ours_only["id"],
    )
    assert other["note"] == (
        f"timing difference paired with suspense item {ours_only['id']} of {yesterday}: dated either side"
    )
    again = await _resolve(t.client, admin, theirs_only, "timing_difference")
    assert again.status_code == 409 and again.json()["type"] == "/problems/suspense-item-resolved"
    response = await _resolve(t.client, admin, refund_ours, "timing_difference")
    assert response.status_code == 200, response.text
    assert response.json()["counterpart_id"] is None
    assert (await _resolve(t.client, admin, refund_theirs, "refund_settled")).status_code == 409
    await t.db.execute(
        "UPDATE payments.refunds SET state = 'succeeded', completed_at = now() WHERE refund_no = $1",
        f"RF{tag}OPEN",
    )
    assert (await _resolve(t.client, admin, refund_theirs, "refund_settled")).status_code == 200
    audited = {
        e["target_id"]: json.loads(e["details"])
        for e in await t.db.fetch(
            "SELECT target_id, details FROM identity.audit_events "
            "WHERE action = 'payments.suspense.resolve' AND outcome = 'success'"
        )
    }
    evidence = {target: details["evidence"] for target, details in audited.items()}
    assert evidence[ours_only["id"]] == f"channel_only on {today}"
    assert evidence[theirs_only["id"]] == f"platform_only on {yesterday}"
    assert audited[ours_only["id"]]["paired_with"] == theirs_only["id"]
    assert audited[theirs_only["id"]]["paired_with"] == ours_only["id"]
    assert audited[theirs_only["id"]]["business_date"] == str(today)
    assert evidence[refund_ours["id"]] == f"matched on {today}"
    assert evidence[refund_theirs["id"]].startswith("refund succeeded at ")
    assert await _items(t.client, admin, state="open") == []


async def test_two_resolutions_at_once_resolve_the_item_once(topups: Topups) -> None:
    t = topups
    await pay_and_notify(t.client, t.citizen, t.urls, "alipay", 5000)  # paid, never notified
    today = dt.datetime.now(CHINA).date()
    clerks = [Actor(kind="operator", id=f"os:clerk{n}") for n in range(2)]
    async with t.service() as service:
        await reconcile_channel(service.pool, service.connectors["alipay"], today)
        [item] = (await list_items(service.pool)).items
        request = ResolveSuspense(resolution=Resolution.WRITTEN_OFF, note="the payer was refunded by hand")
        results = await asyncio.gather(
            *(resolve_item(service.pool, item.id, request, clerk) for clerk in clerks), return_exceptions=True
        )
    assert sorted(type(r).__name__ for r in results) == ["SuspenseItem", "SuspenseItemResolved"]
    [winner] = [r for r in results if not isinstance(r, BaseException)]
    assert not isinstance(winner, SuspenseItemResolved)
    row = await t.db.fetchrow("SELECT state, resolved_by FROM payments.suspense_items WHERE id = $1", item.id)
    assert (row["state"], row["resolved_by"]) == ("resolved", winner.resolved_by)
    outcomes = await t.db.fetch(
        "SELECT actor_id, outcome FROM identity.audit_events WHERE action = 'payments.suspense.resolve'"
    )
    assert sorted((r["actor_id"] == winner.resolved_by, r["outcome"]) for r in outcomes) == [
        (False, "failure"),
        (True, "success"),
    ]


async def test_the_commands_list_and_resolve_under_the_login_running_them(topups: Topups) -> None:
    t = topups
    await pay_and_notify(t.client, t.citizen, t.urls, "alipay", 2500)  # paid, never notified
    today = dt.datetime.now(CHINA).date()
    await _reconcile(t, "alipay", today)
    item_id = str(await t.db.fetchval("SELECT id FROM payments.suspense_items"))
    listed = await asyncio.to_thread(_citizen, t.settings, "payments", "suspense")
    assert listed.returncode == 0, listed.stderr
    assert f"{item_id} {today} alipay channel_only" in listed.stdout
    assert "1 open suspense items" in listed.stdout
    refused = await asyncio.to_thread(
        _citizen, t.settings, "payments", "suspense-resolve", item_id, "--resolution", "credited_late",
        "--note", "looked",
    )  # fmt: skip
    assert refused.returncode == 1 and "suspense-resolution-refused" in refused.stdout
    done = await asyncio.to_thread(
        _citizen, t.settings, "payments", "suspense-resolve", item_id, "--resolution", "channel_refunded",
        "--note", "the channel returned it", "--reference", "ALI-RF-9",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "channel_refunded by os:" in done.stdout
    assert (
        "0 open suspense items"
        in (await asyncio.to_thread(_citizen, t.settings, "payments", "suspense")).stdout
    )
    every = await asyncio.to_thread(_citizen, t.settings, "payments", "suspense", "--all")
    assert f"{item_id} {today} alipay channel_only" in every.stdout and "channel_refunded" in every.stdout
    who = cli_actor().id
    events = await t.db.fetch(
        "SELECT actor_id, outcome FROM identity.audit_events WHERE action = 'payments.suspense.resolve' "
        "ORDER BY occurred_at"
    )
    assert [(e["actor_id"], e["outcome"]) for e in events] == [(who, "failure"), (who, "success")]
    row = await t.db.fetchrow("SELECT resolved_by, reference FROM payments.suspense_items")
    assert (row["resolved_by"], row["reference"]) == (who, "ALI-RF-9")
    # The listings show order numbers: each is audited under the login, as the API's are.
    reads = await t.db.fetch(
        "SELECT actor_kind, actor_id, outcome, details FROM identity.audit_events "
        "WHERE action = 'payments.suspense.list' ORDER BY occurred_at"
    )
    assert [(r["actor_id"], r["outcome"]) for r in reads] == [(who, "success")] * 3
    assert [(json.loads(r["details"])["state"], json.loads(r["details"])["count"]) for r in reads] == [
        ("open", 1),
        ("open", 0),
        ("all", 1),
    ]
    order_no = await t.db.fetchval("SELECT order_no FROM payments.suspense_items")
    assert not any(order_no in r["details"] for r in reads)
