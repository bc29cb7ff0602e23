"""Exactly once against real processes: SIGKILL of the gateway, PostgreSQL and Redis restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from backend.embedded import EmbeddedPostgres, EmbeddedRedis
from backend.keyring import Keyring
from backend.runtime import migrate_database
from backend.settings import Secret, Settings
from card.terminal.gateway import running_gateway
from mock_terminals.bus import BusReader
from mock_terminals.card import SoftwareCard
from tests.terminal.conftest import Rig

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _taps(rig: Rig, terminal_id: str, cards: int, taps: int) -> tuple[BusReader, list[SoftwareCard]]:
    fleet = await rig.cards(cards, balance=100_000)
    bus = await rig.bus(terminal_id, fleet)
    now = dt.datetime.now(dt.UTC)
    for i in range(taps):
        bus.tap(fleet[i % cards], 100, now)
    bus.batch_size = 100
    return bus, fleet


async def _assert_exactly_once(rig: Rig, bus: BusReader, fleet: list[SoftwareCard], taps: int) -> None:
    assert not bus.queue
    async with rig.host.pool.acquire() as db:
        assert (
            await db.fetchval("SELECT count(*) FROM card.terminal_records WHERE status = 'accepted'") == taps
        )
        for card in fleet:
            info = (await rig.host.cards.by_app_serial(db, [card.app_serial]))[card.app_serial]
            assert info.ledger_account_id is not None
            assert await rig.host.ledger.balance(db, info.ledger_account_id) == card.balance


async def _wait_for_batches(rig: Rig, count: int) -> None:
    for _ in range(3000):
        n = await rig.host.pool.fetchval("SELECT count(*) FROM card.terminal_batches")
        if n >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no batch arrived")


def _gateway_process(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    assert settings.database.url is not None and settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        CITIZEN_ENV="test",
        CITIZEN_DATA_DIR=str(settings.data_dir),
        CITIZEN_DATABASE_URL=settings.database.url.reveal(),
        CITIZEN_REDIS_URL=settings.redis.url.reveal(),
        CITIZEN_TERMINAL_PORT=str(port),
        CITIZEN_LOG_LEVEL="WARNING",
        CITIZEN_LOG_JSON="false",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "card.terminal.gateway"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    assert b"listening" in process.stdout.readline()
    return process


async def test_gateway_sigkill_mid_upload(rig: Rig, settings: Settings) -> None:
    bus, fleet = await _taps(rig, "BUS-K", cards=20, taps=1000)
    port = _free_port()
    bus.link.port = port
    first = _gateway_process(settings, port)
    second: subprocess.Popen[bytes] | None = None
    try:
        upload = asyncio.create_task(bus.upload())
        await _wait_for_batches(rig, 2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _gateway_process(settings, port)
        await upload
        await _assert_exactly_once(rig, bus, fleet, 1000)
        assert bus.link.reconnects >= 1
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
            if process is not None and process.stdout is not None:
                process.stdout.close()


async def test_lost_acknowledgement_resend(rig: Rig) -> None:
    bus, fleet = await _taps(rig, "BUS-L", cards=5, taps=300)
    records = dict(bus.queue)
    await bus.upload()
    bus.queue = records  # every acknowledgement "lost": the reader sends it all again
    await bus.upload()
    assert bus.counts == {"accepted": 300, "duplicate": 300, "rejected": 0}
    await _assert_exactly_once(rig, bus, fleet, 300)


@pytest_asyncio.fixture
async def own_services(
    tmp_path: Path, settings: Settings
) -> AsyncIterator[tuple[Settings, EmbeddedPostgres, EmbeddedRedis]]:
    pg = EmbeddedPostgres(tmp_path / "pg", durable=True)
    rd = EmbeddedRedis(tmp_path / "rd", durable=False)
    pg.start()
    rd.start()
    own = settings.replace(
        database=msgspec.structs.replace(settings.database, url=Secret(pg.url), connect_timeout=1.0),
        redis=msgspec.structs.replace(settings.redis, url=Secret(rd.url), socket_timeout=1.0),
    )
    await migrate_database(own)
    try:
        yield own, pg, rd
    finally:
        rd.stop()
        pg.stop()


async def test_postgres_and_redis_restart_mid_upload(
    own_services: tuple[Settings, EmbeddedPostgres, EmbeddedRedis], keyring: Keyring
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    own, pg, rd = own_services
    async with running_gateway(own, keyring, port=0) as (gateway, address):
        rig = Rig(gateway, gateway.host, address, ec.generate_private_key(ec.SECP256R1()), [])
        try:
            bus, fleet = await _taps(rig, "BUS-P", cards=10, taps=1000)
            await bus.link.sign_on()
            upload = asyncio.create_task(bus.upload())
            await _wait_for_batches(rig, 2)
            pg.kill()
            rd.kill()
            rd.start()  # an empty Redis: every session is gone
            pg.ensure_running()
            await upload
            assert bus.link.sign_ons >= 2  # it signed on again after Redis lost the session
            await _assert_exactly_once(rig, bus, fleet, 1000)
        finally:
            for link in rig.links:
                await link.close()
