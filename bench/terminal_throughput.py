"""Terminal protocol throughput: verified offline taps/s end to end beside TAC verification alone;
online load latency at 200 concurrent kiosks; gateway memory for 1,000 connected terminals.

The gateway runs as its own process (as in production); this process plays the terminals. Taps are
made on the software cards before the clock starts, so the figure is the host's rate: frames →
MAC → TAC via the key store → one transaction per batch (records + ledger postings) → answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from backend.db import create_pool
from backend.keyring import Keyring
from backend.runtime import migrate_database
from bench._harness import emit, free_port, service_env, services
from card.keys import CardKeyRef, SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.host.fleet import issue_test_cards
from card.terminal.host.registry import TerminalRegistry
from card.terminal.messages import Heartbeat, HeartbeatResponse
from card.terminal.records import purchase_inputs
from card.terminal.spec import TerminalKind
from mock_terminals.bus import BusReader, Kiosk, SoftwarePsam
from mock_terminals.card import open_personalisation
from mock_terminals.link import TerminalLink

BENCH = "terminal_throughput"
READERS = int(os.environ.get("BENCH_READERS", "50"))
TAPS_PER_READER = int(os.environ.get("BENCH_TAPS", "2000"))
CARDS = int(os.environ.get("BENCH_CARDS", "5000"))
KIOSKS = int(os.environ.get("BENCH_KIOSKS", "200"))
IDLE_TERMINALS = int(os.environ.get("BENCH_IDLE", "1000"))


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _main() -> None:
    with services() as resolved:
        settings = resolved.settings
        await migrate_database(settings)
        keyring = Keyring.load(settings)
        assert settings.database.url is not None
        pool = await create_pool(settings.database, settings.database.url.reveal())
        kek = keyring.get("card-kek")
        keys = SoftwareKeyStore(pool, kek)
        await keys.ensure_initialised()
        registry = TerminalRegistry(pool, kek)
        transport = ec.generate_private_key(ec.SECP256R1())
        documents = await issue_test_cards(
            pool, keys, count=CARDS, balance=10_000_000, issuer_id=CardSettings().issuer_id,
            transport_key=transport.public_key(),
        )  # fmt: skip
        cards = [open_personalisation(d, transport, balance=10_000_000) for d in documents]

        port = free_port()
        env = service_env(
            resolved,
            CITIZEN_TERMINAL_PORT=str(port),
            CITIZEN_LOG_LEVEL="WARNING",
            CITIZEN_TERMINAL_MAX_CONNECTIONS="5000",
            CITIZEN_DATABASE_POOL_MAX="20",
        )
        gateway = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [sys.executable, "-m", "card.terminal.gateway"], env=env, stdout=subprocess.PIPE
        )
        assert gateway.stdout is not None
        gateway.stdout.readline()
        try:
            # --- offline taps: prepare ------------------------------------------------------------
            readers: list[BusReader] = []
            now = dt.datetime.now(dt.UTC)
            for i in range(READERS):
                reg = await registry.register(f"BENCH-{i:04d}", operator="bench-bus", kind=TerminalKind.BUS)
                mine = cards[i::READERS]
                psam = SoftwarePsam(reg.psam_terminal_no, {c.app_serial: c.dpk for c in mine})
                reader = BusReader(
                    TerminalLink(reg.id, reg.tmk, "127.0.0.1", port), psam, reg.tmk, batch_size=500
                )
                for t in range(TAPS_PER_READER):
                    reader.tap(mine[t % len(mine)], 100, now)
                await reader.link.sign_on()
                readers.append(reader)
            total = READERS * TAPS_PER_READER

            # --- baseline: TAC verification alone, same records, same key store -------------------
            items = []
            info = {c.app_serial: c for c in cards}
            for reader in readers:
                for record in reader.queue.values():
                    card = info[record.app_serial]
                    items.append(
                        (CardKeyRef(1, card.app_serial, card.issuer_id), purchase_inputs(record), record.tac)
                    )
            fresh = SoftwareKeyStore(pool, kek)
            started = time.perf_counter()
            assert all(await fresh.verify_purchase_tacs(items))
            tac_rate = len(items) / (time.perf_counter() - started)

            # --- end to end -------------------------------------------------------------------------
            started = time.perf_counter()
            await asyncio.gather(*(r.upload() for r in readers))
            elapsed = time.perf_counter() - started
            accepted = sum(r.counts["accepted"] for r in readers)
            committed = await pool.fetchval(
                "SELECT count(*) FROM card.terminal_records WHERE status = 'accepted'"
            )
            assert accepted == total == committed, (accepted, total, committed)
            rate = total / elapsed
            emit(BENCH, "verified_taps_per_second", rate, "taps/s", baseline="tac_verification_only",
                 baseline_value=tac_rate, target=">= 10000 taps/s and >= 0.5 x TAC-only",
                 readers=READERS, taps=total, batch=500)  # fmt: skip
            for reader in readers:
                await reader.link.close()

            # --- online load at 200 concurrent kiosks -------------------------------------------------
            kiosks = []
            for i in range(KIOSKS):
                reg = await registry.register(f"BK-{i:04d}", operator="bench-kiosk", kind=TerminalKind.KIOSK)
                kiosk = Kiosk(TerminalLink(reg.id, reg.tmk, "127.0.0.1", port), reg.psam_terminal_no)
                await kiosk.link.sign_on()
                kiosks.append(kiosk)
            latencies: list[float] = []

            async def one(kiosk: Kiosk, rounds: int, offset: int) -> None:
                for r in range(rounds):
                    card = cards[(offset + r * KIOSKS) % len(cards)]
                    t0 = time.perf_counter()
                    answer = await kiosk.load(card, 100)
                    latencies.append(time.perf_counter() - t0)
                    assert answer.result == 0

            await asyncio.gather(*(one(k, 5, i) for i, k in enumerate(kiosks)))
            latencies.sort()
            p50 = statistics.median(latencies) * 1000
            p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
            emit(BENCH, "online_load_p50", p50, "ms", kiosks=KIOSKS, loads=len(latencies),
                 note="a load = LOAD + LOAD CONFIRM round trips, card APDUs included")  # fmt: skip
            emit(BENCH, "online_load_p99", p99, "ms", target="<= 20 ms", kiosks=KIOSKS)
            for kiosk in kiosks:
                await kiosk.link.close()

            # --- memory for 1,000 connected, signed-on terminals --------------------------------------
            before = _rss_kb(gateway.pid)
            links = []
            for i in range(IDLE_TERMINALS):
                reg = await registry.register(f"IDLE-{i:05d}", operator="bench-bus", kind=TerminalKind.BUS)
                link = TerminalLink(reg.id, reg.tmk, "127.0.0.1", port)
                await link.sign_on()
                await link.request(Heartbeat(), HeartbeatResponse)
                links.append(link)
            after = _rss_kb(gateway.pid)
            emit(BENCH, "gateway_rss_1000_terminals", after / 1024, "MB", baseline="gateway_rss_idle",
                 baseline_value=before / 1024, target="<= 200 MB", terminals=IDLE_TERMINALS)  # fmt: skip
            for link in links:
                await link.close()
        finally:
            gateway.terminate()
            gateway.wait(10)
            await pool.close()


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
