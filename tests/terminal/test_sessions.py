"""A terminal's session ends when it is disabled or re-keyed; a rotated QR key reaches terminals and host.

Over TCP against a real gateway, PostgreSQL and Redis (the ``rig`` of conftest). The registry's
disable and re-key delete the session in Redis at once; the host also re-checks every request
(status and master-key version), which the tests exercise with a registry that cannot reach Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import TypeVar

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import ec

from backend.keyring import Keyring
from backend.settings import Settings
from card.keys import SoftwareKeyStore
from card.qr import Concession, build_qr_payload
from card.terminal.gateway import running_gateway
from card.terminal.host.registry import TerminalRegistry
from card.terminal.messages import (
    Envelope,
    Heartbeat,
    HeartbeatResponse,
    Message,
    Parameters,
    ParametersResponse,
    Response,
    open_message,
)
from card.terminal.spec import RecordReason, RecordResult, ResultCode
from mock_terminals.bus import BusReader
from mock_terminals.link import LinkError, TerminalLink
from tests.terminal.conftest import Rig

R = TypeVar("R", bound=Response)
_SHORT = 0.3  # the status and parameter cache lifetimes of the ``quick`` rig, seconds


@pytest_asyncio.fixture
async def quick(settings: Settings, keyring: Keyring) -> AsyncIterator[Rig]:
    """A rig whose gateway keeps terminal records and platform parameters for ``_SHORT`` seconds."""
    terminal = msgspec.structs.replace(
        settings.terminal, status_cache_seconds=_SHORT, parameters_cache_seconds=_SHORT
    )
    async with running_gateway(settings.replace(terminal=terminal), keyring, port=0) as (gateway, address):
        rig = Rig(gateway, gateway.host, address, ec.generate_private_key(ec.SECP256R1()), [])
        yield rig
        for link in rig.links:
            await link.close()


async def _once(link: TerminalLink, body: Message, answer: type[R]) -> tuple[R, Envelope]:
    """One request with the link's current session key, no recovery: what the host answered to it.

    (``TerminalLink.request`` would sign on again on ``NOT_SIGNED_ON``, hiding the answer.)"""
    raw, _ = await link._exchange(body, link.session_key)  # the mock terminal's one-frame exchange
    envelope = open_message(raw)
    return envelope.expect(answer), envelope


async def _session_exists(redis: aioredis.Redis, terminal_id: str) -> bool:
    return bool(await redis.exists(f"card:term:s:{terminal_id}"))


async def _accepted_records(rig: Rig, terminal_id: str) -> int:
    return int(
        await rig.host.pool.fetchval(
            "SELECT count(*) FROM card.terminal_records WHERE terminal_id = $1 AND status = 'accepted'",
            terminal_id,
        )
    )


async def test_disable_ends_the_open_session(rig: Rig, redis_client: aioredis.Redis) -> None:
    cards = await rig.cards(1)
    bus = await rig.bus("BUS-D", cards)
    await bus.sync()
    assert (await bus.link.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK
    record = bus.tap(cards[0], 200, dt.datetime.now(dt.UTC))

    await rig.host.registry.set_status("BUS-D", "disabled")
    assert not await _session_exists(redis_client, "BUS-D")
    # The same open connection, the same session key: the session is gone.
    answer, _ = await _once(bus.link, Heartbeat(), HeartbeatResponse)
    assert answer.result == ResultCode.NOT_SIGNED_ON
    # A terminal that signs on again, as it must, is told it is disabled; nothing is uploaded.
    with pytest.raises(LinkError) as refused:
        await bus.link.request(Heartbeat(), HeartbeatResponse)
    assert refused.value.code == ResultCode.TERMINAL_DISABLED
    with pytest.raises(LinkError) as refused:
        await bus.upload()
    assert refused.value.code == ResultCode.TERMINAL_DISABLED
    assert await _accepted_records(rig, "BUS-D") == 0

    # Enabled again: it signs on and the record it kept is accepted (no stale refusal).
    await rig.host.registry.set_status("BUS-D", "active")
    assert await bus.upload() == 1
    assert bus.results[record.terminal_serial] == (RecordResult.ACCEPTED, RecordReason.NONE)
    assert bus.link.sign_ons == 2


async def test_rekey_ends_the_session_and_the_old_key(rig: Rig, redis_client: aioredis.Redis) -> None:
    registration = await rig.register("BUS-R")
    link = rig.link(registration)
    await link.sign_on()
    assert (await link.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK

    rekeyed = await rig.host.registry.rekey("BUS-R")
    assert rekeyed.tmk_version == 2 and rekeyed.tmk != registration.tmk
    assert not await _session_exists(redis_client, "BUS-R")
    # A fresh connection with the old session key: no longer signed on.
    await link.close()
    answer, _ = await _once(link, Heartbeat(), HeartbeatResponse)
    assert answer.result == ResultCode.NOT_SIGNED_ON
    # And the old master key does not sign on again.
    with pytest.raises(LinkError) as refused:
        await link.request(Heartbeat(), HeartbeatResponse)
    assert refused.value.code == ResultCode.BAD_MAC
    assert link.sign_ons == 1

    injected = rig.link(rekeyed)
    assert (await injected.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK


async def test_host_refuses_a_stale_session_even_if_redis_kept_it(
    quick: Rig, redis_client: aioredis.Redis
) -> None:
    """The per-request check alone: a disable or re-key whose session deletion never happened (here
    a registry without Redis; in production Redis unreachable, or a sign-on racing the change)."""
    disabled, rekeyed = await quick.register("BUS-S1"), await quick.register("BUS-S2")
    first, second = quick.link(disabled), quick.link(rekeyed)
    for link in (first, second):
        assert (await link.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK
    without_redis = TerminalRegistry(quick.host.pool, quick.host.registry.kek, redis=None)

    await without_redis.set_status("BUS-S1", "disabled")
    await without_redis.rekey("BUS-S2")
    assert await _session_exists(redis_client, "BUS-S1") and await _session_exists(redis_client, "BUS-S2")
    await asyncio.sleep(_SHORT + 0.2)  # past the gateway's status cache

    answer, envelope = await _once(first, Heartbeat(), HeartbeatResponse)  # the open connection
    assert answer.result == ResultCode.TERMINAL_DISABLED
    assert envelope.unauthenticated  # not MACed with a session that no longer applies
    assert not await _session_exists(redis_client, "BUS-S1")

    await second.close()  # a fresh connection, the session key of the old master key
    answer, envelope = await _once(second, Heartbeat(), HeartbeatResponse)
    assert (answer.result, answer.detail) == (ResultCode.NOT_SIGNED_ON, "terminal re-keyed")
    assert envelope.unauthenticated
    assert not await _session_exists(redis_client, "BUS-S2")
    with pytest.raises(LinkError) as refused:
        await second.request(Heartbeat(), HeartbeatResponse)
    assert refused.value.code == ResultCode.BAD_MAC


async def test_a_new_key_is_accepted_at_once_by_a_gateway_that_cached_the_old(
    rig: Rig, settings: Settings, keyring: Keyring
) -> None:
    """Refusals are decided on a fresh read: a gateway still holding the old record (within its
    status cache) must not refuse a session signed on with the new key through another gateway."""
    registration = await rig.register("BUS-G")
    async with running_gateway(settings, keyring, port=0) as (_, other_address):
        on_other = rig.link(registration)
        on_other.host, on_other.port = other_address
        assert (await on_other.request(Heartbeat(), HeartbeatResponse)).result == ResultCode.OK

        rekeyed = await rig.host.registry.rekey("BUS-G")
        injected = rig.link(rekeyed)
        await injected.sign_on()  # through the rig's gateway
        injected.host, injected.port = other_address  # then to the one that cached version 1
        answer, _ = await _once(injected, Heartbeat(), HeartbeatResponse)
        assert answer.result == ResultCode.OK
        assert injected.sign_ons == 1


async def test_rotated_qr_key_reaches_terminals_and_host(quick: Rig, keyring: Keyring) -> None:
    host = quick.host
    [card] = await quick.cards(1)
    bus = await quick.bus("BUS-Q", [card])
    await bus.sync()
    phone = ec.generate_private_key(ec.SECP256R1())

    async def ride(bus: BusReader) -> tuple[int, int]:
        now = dt.datetime.now(dt.UTC)
        authorisation = await host.keys.sign_qr_authorisation(
            issuer_id=host.card_settings.issuer_code,
            card_number=card.card_number,
            concession=Concession.STANDARD,
            cap_fen=host.card_settings.single_payment_cap_fen,
            expires_at=now + dt.timedelta(hours=1),
            device_public_key=phone.public_key(),
        )
        record = bus.scan_qr(build_qr_payload(authorisation, phone, now), 200, now)
        await bus.upload()
        return bus.results[record.terminal_serial]

    accepted = (RecordResult.ACCEPTED, RecordReason.NONE)
    assert await ride(bus) == accepted  # signed with key 1
    before = (await bus.link.request(Heartbeat(), HeartbeatResponse)).parameter_version
    platform = await host.downloads.platform()
    await asyncio.sleep(_SHORT + 0.2)
    # Re-read, unchanged: the same object, so the batch upload's QR verifier is not rebuilt.
    assert await host.downloads.platform() is platform

    # The key is rotated elsewhere (another process's key store), the gateway is not restarted.
    version = await SoftwareKeyStore(host.pool, keyring.get("card-kek")).rotate()
    assert version == 2
    await asyncio.sleep(_SHORT + 0.2)
    beat = await bus.link.request(Heartbeat(), HeartbeatResponse)
    assert beat.parameter_version == version * 1000 + 1 != before
    download = await bus.link.request(Parameters(), ParametersResponse)
    assert [k.key_id for k in download.keys] == [1, version]
    assert download.parameter_version == beat.parameter_version
    await bus.sync()  # the reader takes the new key; a ride signed with it is accepted by the host
    assert await ride(bus) == accepted
    assert await _accepted_records(quick, "BUS-Q") == 2
