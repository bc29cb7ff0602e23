"""The operators' console over HTTP (in-process): operator sign-in with errors next to the field,
terminals and the chart, settlements with their files, search with masked personal data (never an
unmasked ID number), the audit log."""

from __future__ import annotations

import datetime as dt
import re

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.keyring import Keyring
from card.terminal.host.registry import TerminalRegistry
from card.terminal.spec import TerminalKind
from integrations.simulators.seed import DEMO_CITIZEN
from tests.web.conftest import csrf_of, demo_operator, operator_sign_in

Client = AsyncTestClient[Litestar]


def _first_group(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, pattern
    return found.group(1)


async def test_operator_sign_in_errors_are_next_to_the_field(client: Client, operator_password: str) -> None:
    page = await client.get("/console/login?lang=en")
    wrong = await client.post(
        "/console/login",
        data={"csrf": csrf_of(page.text), "username": demo_operator(), "password": "nope-nope"},
    )
    assert wrong.status_code == 422
    assert re.search(r'id="password-error">Wrong username or password<', wrong.text)
    empty = await client.post("/console/login?lang=zh-CN", data={"csrf": csrf_of(wrong.text), "username": ""})
    assert re.search(r'id="username-error">请输入用户名<', empty.text)
    assert re.search(r'id="password-error">请输入密码<', empty.text)
    unsigned = await client.get("/console/", follow_redirects=False)
    assert unsigned.status_code == 303 and unsigned.headers["location"].startswith("/console/login?next=")


async def test_terminals_chart_and_settlements(
    client: Client, operator_password: str, database_url: str, keyring: Keyring
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        pool_like = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        registry = TerminalRegistry(pool_like, keyring.get("card-kek"), redis=None)  # registers only
        await registry.register("BUS-0001", operator="citybus", kind=TerminalKind.BUS, line="M1", site=None)
        await pool_like.close()
        run = dt.date(2025, 6, 3)
        await connection.execute(
            "INSERT INTO payments.settlement_runs (business_date, as_of) VALUES ($1, now())", run
        )
        await connection.execute(
            "INSERT INTO payments.settlements (business_date, operator, taps, gross, late_taps,"
            " concession_taps, rebates, fees, net, file_name, file)"
            " VALUES ($1, 'citybus', 12, 2400, 0, 1, 0, 12, 2388, 'citybus-20250603.csv', $2)",
            run,
            b"taps,gross\n12,2400\n",
        )
    finally:
        await connection.close()
    console = await operator_sign_in(client, operator_password)
    assert console.url.path == "/console/", console.text[:1000]
    assert 'data-terminal="BUS-0001"' in console.text
    assert "citybus-20250603.csv" in console.text and "¥24.00" in console.text
    chart = await client.get(_first_group(r'src="(/console/chart\.svg[^"]*)"', console.text))
    assert chart.status_code == 200 and b"<svg" in chart.content
    assert b'href="http' not in chart.content and b"//fonts." not in chart.content  # nothing from outside
    assert "script-src 'none'" in chart.headers["content-security-policy"]  # pygal's config script is inert
    file = await client.get("/console/settlements/2025-06-03/citybus")
    assert file.status_code == 200 and file.content == b"taps,gross\n12,2400\n"
    assert "citybus-20250603.csv" in file.headers["content-disposition"]


async def test_search_never_shows_an_unmasked_id_number(client: Client, operator_password: str) -> None:
    await operator_sign_in(client, operator_password)
    pages = []
    for query in (DEMO_CITIZEN.id_number, DEMO_CITIZEN.mobile):
        found = await client.get("/console/search", params={"q": query})
        assert found.status_code == 200
        assert 'class="person"' in found.text and 'class="card-row"' in found.text
        pages.append(found.text)
    card_number = _first_group(r'<tr class="card-row"><td class="mono">(\d+)</td>', pages[0])
    by_card = await client.get("/console/search", params={"q": card_number})
    assert 'class="card-row"' in by_card.text
    pages.append(by_card.text)
    account = _first_group(r"/console/audit\?subject=([0-9a-f-]{36})", pages[0])
    audit = await client.get("/console/audit", params={"subject": account})
    assert 'class="audit-entry"' in audit.text
    pages.append(audit.text)
    for html in pages:
        assert DEMO_CITIZEN.id_number not in html
        assert DEMO_CITIZEN.id_number[6:14] not in html  # not even the birth date part
        assert DEMO_CITIZEN.mobile not in html
        assert DEMO_CITIZEN.name not in html  # names are masked too
    bad = await client.get("/console/search", params={"q": "abc", "lang": "en"})
    assert bad.status_code == 422 and 'id="q-error"' in bad.text
    bad = await client.get("/console/audit", params={"subject": "not-a-uuid"})
    assert bad.status_code == 422 and 'id="subject-error"' in bad.text
