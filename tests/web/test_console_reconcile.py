"""The console's reconciliation suspense items: listed through the payments admin API, resolved by
a form (CSRF, the API's refusal next to the form, a flash on success), read-only for auditors."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from identity.admin.operators import create_operator
from identity.passwords import PasswordHasher
from tests.web.conftest import csrf_of, demo_operator, operator_sign_in

Client = AsyncTestClient[Litestar]
DAY = dt.date(2025, 6, 3)


async def _item(db: Any, order_no: str, kind: str, platform: int | None, channel: int | None) -> str:
    """A suspense item as reconciliation opens it (payments.clearing.reconcile; tested there)."""
    item_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO payments.suspense_items (id, business_date, channel, order_no, kind, platform_amount, "
        "channel_amount) VALUES ($1, $2, 'alipay', $3, $4, $5, $6)",
        item_id, DAY, order_no, kind, platform, channel,
    )  # fmt: skip
    return str(item_id)


async def _day(db: Any) -> tuple[str, str]:
    await db.execute(
        "INSERT INTO payments.reconciliations (business_date, channel, matched, channel_only, platform_only, "
        "mismatched, report) VALUES ($1, 'alipay', 7, 1, 1, 0, '[]')",
        DAY,
    )
    theirs = await _item(db, "X202506030001", "channel_only", None, 1234)
    ours = await _item(db, "T202506030002", "platform_only", 5000, None)
    return theirs, ours


def _form_of(html: str, item_id: str) -> str:
    found = re.search(rf'<form[^>]+id="resolve-{item_id}".*?</form>', html, re.S)
    assert found, html[:3000]
    return found.group(0)


def _back(html: str) -> str:
    found = re.search(r'name="back" value="([^"]+)"', html)
    assert found
    return found.group(1).replace("&amp;", "&")


async def test_an_operator_resolves_an_item_from_the_console(
    client: Client, operator_password: str, db: Any
) -> None:
    theirs, ours = await _day(db)
    dashboard = await operator_sign_in(client, operator_password)
    assert 'id="suspense-items-link"' in dashboard.text
    assert (
        "/console/reconciliation?state=all&amp;business_date=2025-06-03&amp;channel=alipay" in dashboard.text
    )

    page = await client.get("/console/reconciliation?lang=en")
    assert page.status_code == 200
    assert page.text.count('class="suspense-item"') == 2 and 'id="read-only"' not in page.text
    # Each form offers what the rules allow for its item: a late credit only for a channel-only payment.
    assert 'value="credited_late"' in _form_of(page.text, theirs)
    assert 'value="credited_late"' not in _form_of(page.text, ours)
    assert 'value="timing_difference"' in _form_of(page.text, ours)
    action = f"/console/reconciliation/{theirs}/resolve"
    form = {"csrf": csrf_of(page.text), "back": _back(page.text), "note": "no such order of ours"}

    # The API refuses the claim (we never had this order): its reason next to this item's form.
    refused = await client.post(action, data={**form, "resolution": "credited_late"})
    assert refused.status_code == 409
    assert re.search(rf'id="item-{theirs}-error">It cannot be resolved so: no order of ours', refused.text)
    assert 'value="no such order of ours"' in refused.text  # what was typed stays
    forged = await client.post(action, data={**form, "csrf": "forged", "resolution": "written_off"})
    assert forged.status_code == 403 and f'id="item-{theirs}-error"' in forged.text

    done = await client.post(action, data={**form, "resolution": "written_off"})
    assert done.status_code == 200 and str(done.url).endswith("/console/reconciliation?state=open")
    assert "The suspense item is resolved" in done.text
    assert f'data-item="{theirs}"' not in done.text and f'data-item="{ours}"' in done.text
    again = await client.post(action, data={**form, "resolution": "written_off"})
    assert again.status_code == 409 and 'id="list-error">This suspense item is already resolved' in again.text
    resolved = await client.get("/console/reconciliation", params={"state": "resolved", "lang": "zh-CN"})
    assert f'data-item="{theirs}"' in resolved.text and "核销" in resolved.text
    assert "no such order of ours" in resolved.text

    operator_id = await db.fetchval("SELECT id FROM identity.operators WHERE username = $1", demo_operator())
    events = await db.fetch(
        "SELECT actor_id, outcome FROM identity.audit_events WHERE action = 'payments.suspense.resolve' "
        "ORDER BY occurred_at"
    )
    # The forged form never reached the API; the refusals that did are audited under the operator.
    assert [(e["actor_id"], e["outcome"]) for e in events] == [
        (str(operator_id), "failure"),
        (str(operator_id), "success"),
        (str(operator_id), "failure"),
    ]
    row = await db.fetchrow(
        "SELECT state, resolution, note FROM payments.suspense_items WHERE id = $1", uuid.UUID(theirs)
    )
    assert tuple(row.values()) == ("resolved", "written_off", "no such order of ours")


async def test_auditors_read_the_items_but_cannot_resolve_them(
    client: Client, settings_with_upstreams: Settings, db: Any
) -> None:
    theirs, _ = await _day(db)
    password = "a long operator password 1"
    await create_operator(
        db, PasswordHasher(settings_with_upstreams.identity), username="recon-auditor",
        display_name="recon-auditor", roles=["auditor"], password=password,
    )  # fmt: skip
    page = await client.get("/console/login")
    await client.post(
        "/console/login",
        data={
            "csrf": csrf_of(page.text),
            "username": "recon-auditor",
            "password": password,
            "next": "/console/",
        },
    )
    listed = await client.get("/console/reconciliation?lang=en")
    assert listed.status_code == 200 and listed.text.count('class="suspense-item"') == 2
    assert 'id="read-only"' in listed.text and 'id="resolve-' not in listed.text
    # A form posted anyway: the API refuses the role, and the item stays open.
    tried = await client.post(
        f"/console/reconciliation/{theirs}/resolve",
        data={"csrf": csrf_of(listed.text), "resolution": "written_off", "note": "mine to close"},
    )
    assert tried.status_code == 403 and "Your roles do not allow this" in tried.text
    assert (
        await db.fetchval("SELECT state FROM payments.suspense_items WHERE id = $1", uuid.UUID(theirs))
        == "open"
    )
    bad = await client.get("/console/reconciliation", params={"business_date": "3 June"})
    assert bad.status_code == 422 and 'id="business_date-error"' in bad.text
