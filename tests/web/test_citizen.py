"""The citizen page over HTTP (in-process): sign-in through the provider, card and QR, top-up with
an idempotency key, form errors in the page's language, card actions, an expired sign-in, acting
for an organisation."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.settings import Settings
from identity.oidc.sso import COOKIE as SSO_COOKIE
from integrations.simulators.process import SimulatorsProcess
from integrations.simulators.seed import DEMO_CITIZEN, ENTERPRISES
from tests.web.conftest import csrf_of, path_of, provider_login, sign_in

Client = AsyncTestClient[Litestar]


def _key(html: str) -> str:
    found = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def _topup_form(client: Client) -> tuple[str, str]:
    page = await client.get("/web/")
    return csrf_of(page.text), _key(page.text)


async def test_sign_in_shows_card_qr_and_balance(client: Client, citizen_password: str) -> None:
    landing = await client.get("/web/")
    assert landing.status_code == 200 and 'id="sign-in"' in landing.text
    cookie = landing.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/web" in cookie
    page = await sign_in(client, citizen_password)
    assert page.status_code == 200, page.text[:2000]
    assert str(page.url).endswith("/web/")
    assert 'id="card-number"' in page.text and 'id="qr"' in page.text
    assert DEMO_CITIZEN.name in page.text
    assert 'id="balance"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    qr = await client.get("/web/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in qr.content
    again = await client.get("/web/qr.svg")
    assert again.content != qr.content  # a fresh code each time (new timestamp and signature)


async def _replay_notifications(client: Client, simulator: str, order_no: str) -> None:
    """The simulator cannot reach the in-process app: hand its notifications over, as a channel would."""
    async with httpx.AsyncClient() as http:
        deliveries = [
            d
            for d in (await http.get(f"{simulator}/_control/notifications")).json()
            if d["order_no"] == order_no
        ]
    assert deliveries
    for delivery in deliveries:
        await client.post(
            path_of(delivery["url"]), content=delivery["body"].encode(), headers=delivery["headers"]
        )


async def test_topup_double_click_is_one_order_and_the_balance_follows(
    client: Client, citizen_password: str, database_url: str, simulators: SimulatorsProcess
) -> None:
    await sign_in(client, citizen_password)
    before = await client.get("/web/status")
    balance = before.json()["balance"]
    csrf, key = await _topup_form(client)
    form = {"csrf": csrf, "idempotency_key": key, "amount": "20", "channel": "alipay"}
    connection = await asyncpg.connect(database_url)
    try:
        orders = await connection.fetchval("SELECT count(*) FROM payments.topup_orders")
        first = await client.post("/web/topups", data=form, follow_redirects=False)
        second = await client.post("/web/topups", data=form, follow_redirects=False)
        assert first.status_code == second.status_code == 303
        assert first.headers["location"] == second.headers["location"]
        assert await connection.fetchval("SELECT count(*) FROM payments.topup_orders") == orders + 1
        order_no = await connection.fetchval(
            "SELECT order_no FROM payments.topup_orders ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await connection.close()
    order_path = first.headers["location"]
    page = await client.get(order_path)
    assert 'id="simulate-pay"' in page.text and "¥20.00" in page.text
    paid = await client.post(f"{order_path}/simulate", data={"csrf": csrf_of(page.text)})
    assert paid.status_code == 200
    await _replay_notifications(client, simulators.urls["alipay"], order_no)
    status = (await client.get(f"{order_path}/status")).json()
    assert status["state"] == "credited"
    assert status["balance"] == balance + 2000
    card = await client.get("/web/")
    assert f"¥{(balance + 2000) / 100:,.2f}" in card.text


@pytest.mark.parametrize(
    ("lang", "amount", "channel", "field", "message"),
    [
        ("en", "abc", "alipay", "amount", "Enter the amount in yuan, e.g. 20 or 20.50"),
        ("zh-CN", "abc", "alipay", "amount", "金额格式不正确"),
        ("en", "", "alipay", "amount", "Enter an amount"),
        ("en", "0.5", "alipay", "amount", "The amount must be between 1 and 1000 yuan"),
        ("zh-CN", "20", "", "channel", "请选择支付渠道"),
        ("en", "20", "paypal", "channel", "Choose a payment channel"),
    ],
)
async def test_form_errors_next_to_the_field_in_the_page_language(
    client: Client,
    citizen_password: str,
    database_url: str,
    lang: str,
    amount: str,
    channel: str,
    field: str,
    message: str,
) -> None:
    await sign_in(client, citizen_password)
    await client.get(f"/web/?lang={lang}")
    csrf, key = await _topup_form(client)
    connection = await asyncpg.connect(database_url)
    try:
        orders = await connection.fetchval("SELECT count(*) FROM payments.topup_orders")
        response = await client.post(
            "/web/topups", data={"csrf": csrf, "idempotency_key": key, "amount": amount, "channel": channel}
        )
        assert await connection.fetchval("SELECT count(*) FROM payments.topup_orders") == orders
    finally:
        await connection.close()
    assert response.status_code == 422
    error = re.search(rf'<p class="error" id="{field}-error">([^<]*)</p>', response.text)
    assert error and message in error.group(1), response.text[-3000:]
    assert f'<html lang="{lang}">' in response.text


async def test_forms_without_the_csrf_token_do_nothing(client: Client, citizen_password: str) -> None:
    await sign_in(client, citizen_password)
    refused = await client.post("/web/card/freeze", data={"csrf": "forged"})
    assert refused.status_code == 200 and 'id="freeze"' in refused.text  # still active
    refused = await client.post("/web/card/freeze", data={})
    assert 'id="freeze"' in refused.text


async def test_freeze_unfreeze_and_report_loss(client: Client, citizen_password: str) -> None:
    page = await sign_in(client, citizen_password)
    frozen = await client.post("/web/card/freeze", data={"csrf": csrf_of(page.text)})
    assert 'class="status-frozen"' in frozen.text and 'id="unfreeze"' in frozen.text
    assert 'id="qr"' not in frozen.text
    active = await client.post("/web/card/unfreeze", data={"csrf": csrf_of(frozen.text)})
    assert 'class="status-active"' in active.text and 'id="qr"' in active.text
    lost = await client.post("/web/card/report_loss", data={"csrf": csrf_of(active.text)})
    assert 'class="status-lost"' in lost.text
    assert (await client.get("/web/qr.svg")).status_code != 200


async def test_a_card_the_service_froze_offers_no_unfreeze(
    client: Client, citizen_password: str, database_url: str
) -> None:
    """Only the card service may lift its own freeze (the API refuses the holder): the page says
    so instead of offering a button that would fail."""
    page = await sign_in(client, citizen_password)
    frozen = await client.post("/web/card/freeze", data={"csrf": csrf_of(page.text)})
    assert 'id="unfreeze"' in frozen.text
    connection = await asyncpg.connect(database_url)
    try:  # as an operator's freeze leaves it (card.lifecycle: frozen_by)
        assert (
            await connection.execute("UPDATE card.cards SET frozen_by = 'operator' WHERE status = 'frozen'")
            != "UPDATE 0"
        )
    finally:
        await connection.close()
    again = await client.get("/web/")
    assert 'class="status-frozen"' in again.text
    assert 'id="unfreeze"' not in again.text and 'id="frozen-by-operator"' in again.text
    assert 'id="report-loss"' not in again.text  # refused to the holder too, as are reissue and close


async def _expire(redis_client: aioredis.Redis) -> None:
    """What an idle night does to a sign-in: the access token expired and the refresh token gone."""
    keys = [k async for k in redis_client.scan_iter("web:s:*")]
    assert keys
    for key in keys:
        raw = await redis_client.get(key)
        assert raw is not None
        session: dict[str, Any] = msgspec.json.decode(raw)
        if session.get("kind") == "citizen":
            session.update(expires_at=0.0, refresh_token="revoked-" + "x" * 40)
            await redis_client.set(key, msgspec.json.encode(session), keepttl=True)


async def test_an_expired_sign_in_returns_to_where_the_citizen_was(
    client: Client, citizen_password: str, redis_client: aioredis.Redis
) -> None:
    await sign_in(client, citizen_password)
    csrf, key = await _topup_form(client)
    await _expire(redis_client)
    # The top-up form sent after expiry: back to the login, then to the form with what was typed.
    sent = await client.post(
        "/web/topups",
        data={"csrf": csrf, "idempotency_key": key, "amount": "20", "channel": "wechatpay"},
        follow_redirects=False,
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/web/login?return_to=")
    # The provider's own session has ended too (else single sign-on answers without a page).
    client.cookies.delete(SSO_COOKIE)
    login_page = await client.get(sent.headers["location"])
    assert "/oidc/interaction/" in str(login_page.url)
    back = await provider_login(client, login_page, citizen_password)
    assert back.url.path == "/web/" and back.url.params["amount"] == "20"
    assert 'value="20"' in back.text and 'id="channel-wechatpay" checked' in back.text
    # A page visited after expiry: the same, to that page.
    await _expire(redis_client)
    later = await client.get("/web/topups/00000000-0000-4000-8000-000000000000", follow_redirects=False)
    assert later.status_code == 303
    assert (
        later.headers["location"]
        == "/web/login?return_to=%2Fweb%2Ftopups%2F00000000-0000-4000-8000-000000000000"
    )
    # With the provider's session still alive, single sign-on brings the citizen straight back.
    again = await client.get(later.headers["location"])
    assert again.url.path == "/web/topups/00000000-0000-4000-8000-000000000000"


async def test_a_callback_without_its_login_is_refused(client: Client) -> None:
    response = await client.get("/web/callback?code=abc&state=forged")
    assert response.status_code == 400 and 'id="message"' in response.text


async def test_acting_for_an_organisation(client: Client, citizen_password: str) -> None:
    page = await sign_in(client, citizen_password)
    company = ENTERPRISES[0]
    option = re.search(r'<option value="([0-9a-f-]{36})" >' + re.escape(company.name), page.text)
    assert option, page.text
    acting = await client.post(
        "/web/act-for", data={"csrf": csrf_of(page.text), "organisation": option.group(1)}
    )
    assert 'id="acting-banner"' in acting.text and company.name in acting.text
    # The organisation's tiles: the exchanged token names the API as its audience (RFC 8693).
    assert 'id="tiles"' in acting.text, acting.text
    back = await client.post("/web/act-for", data={"csrf": csrf_of(acting.text), "organisation": ""})
    assert 'id="acting-banner"' not in back.text


async def test_language_switch_and_sign_out(
    client: Client, citizen_password: str, settings_with_upstreams: Settings
) -> None:
    page = await sign_in(client, citizen_password)
    english = await client.get("/web/?lang=en")
    assert '<html lang="en">' in english.text and "Virtual citizen card" in english.text
    out = await client.post("/web/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and "/oidc/logout?" in out.headers["location"]
    landing = await client.get("/web/")
    assert 'id="sign-in"' in landing.text
