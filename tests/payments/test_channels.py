"""The channel connectors against the channel simulators (a real separate process, real HTTP)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from backend.keyring import Keyring
from integrations.simulators.process import SimulatorsProcess
from payments.channels import (
    ChannelConnector,
    ForgedNotification,
    PaymentStatus,
    RefundStatus,
    build_connectors,
)
from payments.channels.config import channel_configs
from tests.payments.channel_helpers import channel_faults, channel_pay, channel_reset, notifications_of


@pytest_asyncio.fixture
async def connectors(
    settings_with_upstreams: object, simulators: SimulatorsProcess
) -> AsyncIterator[dict[str, ChannelConnector]]:
    settings = settings_with_upstreams
    key = Keyring.load(settings, names=("simulator",)).get("simulator")  # type: ignore[arg-type]
    async with httpx.AsyncClient() as client:
        await channel_reset(client, simulators.urls)
        yield build_connectors(channel_configs(settings.integrations, key), client)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["unionpay", "alipay", "wechatpay"])
async def test_pay_notify_query_refund_statement(
    name: str, connectors: dict[str, ChannelConnector], simulators: SimulatorsProcess
) -> None:
    channel = connectors[name]
    order_no = "T" + secrets.token_hex(8).upper()
    start = await channel.create(order_no, 5000, "", "top-up")
    assert start.pay_url
    assert (await channel.query(order_no)).status is PaymentStatus.WAITING
    assert (await channel.query("NOPE" + order_no)).status is PaymentStatus.NOT_FOUND
    async with httpx.AsyncClient() as client:
        await channel_pay(client, simulators.urls[name], order_no)
        [delivery] = await notifications_of(client, simulators.urls[name], order_no)
    notified = channel.verify_notification(delivery["headers"], delivery["body"].encode())
    assert (notified.order_no, notified.amount, notified.status) == (order_no, 5000, PaymentStatus.PAID)
    paid = await channel.query(order_no)
    assert (paid.status, paid.amount) == (PaymentStatus.PAID, 5000)
    assert await channel.refund(order_no, "R" + order_no, 1000, 5000) is RefundStatus.SUCCEEDED
    more_than_left = await channel.refund(order_no, "R2" + order_no, 4001, 5000)
    assert more_than_left is RefundStatus.REFUSED
    # The same refund number again is the same refund: answered as it is, refunded once.
    assert await channel.refund(order_no, "R" + order_no, 1000, 5000) is RefundStatus.SUCCEEDED
    assert await channel.refund_query(order_no, "R" + order_no) is RefundStatus.SUCCEEDED
    assert await channel.refund_query(order_no, "R3" + order_no) is RefundStatus.NOT_FOUND
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    lines = {(e.order_no, e.kind): e.amount for e in await channel.statement(today)}
    assert lines[(order_no, "payment")] == 5000
    assert lines[(order_no, "refund")] == 1000
    assert sum(e.amount for e in await channel.statement(today) if e.kind == "refund") == 1000
    # A tampered notification is refused.
    tampered = delivery["body"].replace("5000", "9000").replace("50.00", "90.00")
    if name == "wechatpay":
        tampered = delivery["body"][:-3] + 'x"}'
    with pytest.raises(ForgedNotification):
        channel.verify_notification(delivery["headers"], tampered.encode())


@pytest.mark.parametrize("name", ["unionpay", "alipay", "wechatpay"])
async def test_close_waiting_order(name: str, connectors: dict[str, ChannelConnector]) -> None:
    channel = connectors[name]
    order_no = "T" + secrets.token_hex(8).upper()
    await channel.create(order_no, 100, "", "top-up")
    assert await channel.close(order_no)
    assert (await channel.query(order_no)).status is PaymentStatus.CLOSED


@pytest.mark.parametrize("name", ["unionpay", "alipay", "wechatpay"])
async def test_a_refund_still_processing_is_neither_refunded_nor_refused(
    name: str, connectors: dict[str, ChannelConnector], simulators: SimulatorsProcess
) -> None:
    channel = connectors[name]
    order_no = "T" + secrets.token_hex(8).upper()
    await channel.create(order_no, 5000, "", "top-up")
    url = simulators.urls[name]
    async with httpx.AsyncClient() as client:
        await channel_pay(client, url, order_no)
        await channel_faults(client, url, refunds_processing=1)
        assert await channel.refund(order_no, "R" + order_no, 5000, 5000) is RefundStatus.PROCESSING
        if name != "alipay":  # Alipay shows only refunds that succeeded: "not found" until then
            assert await channel.refund_query(order_no, "R" + order_no) is RefundStatus.PROCESSING
        answer = await client.post(f"{url}/_control/refunds/R{order_no}", json={"status": "SUCCESS"})
        assert answer.json()["ok"], answer.text
    assert await channel.refund_query(order_no, "R" + order_no) is RefundStatus.SUCCEEDED
