"""The console's suspense table (docs/terminal-protocol.md §5.4): support and security_admin
operators resolve open entries from the dashboard (accept where the reason allows it, reject, a
note), through the admin API as themselves; an auditor sees the queue without the forms."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from backend.settings import Settings
from card.terminal.gateway import running_gateway
from card.terminal.spec import RecordReason
from identity.admin.operators import create_operator
from identity.passwords import PasswordHasher
from tests.terminal.conftest import Rig
from tests.terminal.test_suspense_resolution import held
from tests.web.conftest import BASE, csrf_of, operator_sign_in

Client = AsyncTestClient[Litestar]
NOTE = "reader clock an hour fast; journal checked"


async def _held_records(settings: Settings, keyring: Keyring) -> dict[str, int]:
    """Records of one card held by the host on terminal BUS-WEB: their serials by name."""
    async with running_gateway(settings, keyring, port=0) as (gateway, address):
        rig = Rig(gateway, gateway.host, address, ec.generate_private_key(ec.SECP256R1()), [])
        try:
            [card] = await rig.cards(1, balance=1_000)
            bus = await rig.bus("BUS-WEB", [card])
            return {
                "drift": await held(bus, card, 150, RecordReason.CLOCK_DRIFT),
                "forged": await held(bus, card, 120, RecordReason.BAD_TAC),
                "later": await held(bus, card, 130, RecordReason.CLOCK_DRIFT),
            }
        finally:
            for link in rig.links:
                await link.close()


def _form(html: str, serial: int) -> str:
    found = re.search(rf'<form [^>]*data-entry="BUS-WEB#{serial}">.*?</form>', html, re.DOTALL)
    assert found, html[:3000]
    return found.group(0)


async def _entry(database_url: str, serial: int) -> tuple[str, str | None, str]:
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT s.state, s.decision, r.status FROM card.terminal_suspense s JOIN card.terminal_records r "
            "USING (terminal_id, terminal_serial) WHERE s.terminal_id = 'BUS-WEB' AND s.terminal_serial = $1",
            serial,
        )
    finally:
        await connection.close()
    assert row is not None
    return row["state"], row["decision"], row["status"]


async def _resolve(client: Client, serial: int, **form: str) -> httpx.Response:
    return await client.post(f"/console/suspense/BUS-WEB/{serial}/resolve", data=form, follow_redirects=False)


async def test_an_operator_resolves_entries_from_the_dashboard(
    client: Client, operator_password: str, settings: Settings, keyring: Keyring, database_url: str
) -> None:
    serials = await _held_records(settings, keyring)
    console = await operator_sign_in(client, operator_password)  # demo-admin: every role
    page = (await client.get("/console/?lang=en")).text
    # No <meta refresh>: it would reload the page under a note being typed. console.js reloads
    # it, and skips a reload while a note field is filled in or focused.
    assert 'http-equiv="refresh"' not in page and '<script src="/web/static/console.js"' in page
    script = await client.get("/web/static/console.js")
    assert script.status_code == 200 and "activeElement" in script.text
    accept = 'name="decision" value="accept"'
    assert accept in _form(page, serials["drift"])
    assert accept not in _form(page, serials["forged"]) and 'value="reject"' in _form(page, serials["forged"])
    csrf = csrf_of(console.text)

    forged = await _resolve(client, serials["drift"], decision="accept", note=NOTE, csrf="not-it")
    assert forged.status_code == 403
    empty = await _resolve(client, serials["drift"], decision="accept", note="  ", csrf=csrf)
    assert empty.status_code == 422 and "write a note" in empty.text
    assert await _entry(database_url, serials["drift"]) == ("open", None, "suspended")

    done = await _resolve(client, serials["drift"], decision="accept", note=NOTE, csrf=csrf)
    assert (done.status_code, done.headers["location"]) == (303, "/console/#suspense")
    assert await _entry(database_url, serials["drift"]) == ("resolved", "accept", "accepted")
    again = await _resolve(client, serials["drift"], decision="reject", note=NOTE, csrf=csrf)
    assert again.status_code == 409 and "already been resolved" in again.text

    refused = await _resolve(client, serials["forged"], decision="accept", note=NOTE, csrf=csrf)
    assert refused.status_code == 409 and "can only be rejected" in refused.text
    written_off = await _resolve(client, serials["forged"], decision="reject", note=NOTE, csrf=csrf)
    assert written_off.status_code == 303
    assert await _entry(database_url, serials["forged"]) == ("resolved", "reject", "suspended")

    page = (await client.get("/console/")).text  # resolved entries leave the table
    assert f'data-entry="BUS-WEB#{serials["drift"]}"' not in page
    assert f'data-entry="BUS-WEB#{serials["later"]}"' in page


async def test_an_auditor_sees_the_queue_without_the_forms(
    app: Litestar, settings: Settings, keyring: Keyring, database_url: str, db: Any
) -> None:
    serials = await _held_records(settings, keyring)
    password = "a long operator password 1"
    await create_operator(
        db, PasswordHasher(settings.identity), username="web-auditor", display_name="web-auditor",
        roles=["auditor"], password=password,
    )  # fmt: skip
    async with AsyncTestClient(app, base_url=BASE) as client:
        login = await client.get("/console/login")
        console = await client.post(
            "/console/login",
            data={
                "csrf": csrf_of(login.text),
                "username": "web-auditor",
                "password": password,
                "next": "/console/",
            },
        )
        assert console.url.path == "/console/", console.text[:1000]
        assert f"BUS-WEB#{serials['later']}" in console.text  # the queue, read
        assert "suspense-resolve" not in console.text  # no forms
        refused = await _resolve(
            client, serials["later"], decision="reject", note=NOTE, csrf=csrf_of(console.text)
        )
        assert refused.status_code == 403
    assert await _entry(database_url, serials["later"]) == ("open", None, "suspended")
