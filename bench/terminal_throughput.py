"""Terminal protocol throughput: verified offline taps/s end to end beside TAC verification alone;
online load latency at 200 concurrent kiosks; gateway memory for 1,000 connected terminals.

The gateway runs as its own process (as in production); this process plays the terminals. Taps are
made on the software cards before the clock starts, so the figure is the host's rate: frames →
MAC → TAC via the key store → one transaction per batch (records + ledger postings) → answer.
Beside the online loads' p99, a durable one-row commit's latency sampled during the same seconds:
each load waits for two commits, so a stall of the disk's flushes shows in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from backend.db import Pool, create_pool
from backend.keyring import Keyring
from backend.runtime import migrate_database
from bench._harness import emit, free_port, service_env, services
from bench._terminal_floor import tap_floor
from card.keys import CardKeyRef, SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.host.fleet import issue_test_cards
from card.terminal.host.registry import TerminalRegistry
from card.terminal.messages import Heartbeat, HeartbeatResponse
from card.terminal.records import purchase_inputs
from card.terminal.spec import TerminalKind
from mock_terminals.bus import BusReader, Kiosk, SoftwarePsam
from mock_terminals.card import SoftwareCard, open_personalisation
from mock_terminals.link import TerminalLink

BENCH = "terminal_throughput"
READERS = int(os.environ.get("BENCH_READERS", "50"))
TAPS_PER_READER = int(os.environ.get("BENCH_TAPS", "2000"))
WARM_TAPS = int(os.environ.get("BENCH_WARM_TAPS", "100"))  # per reader, uploaded before the clock
CARDS = int(os.environ.get("BENCH_CARDS", "5000"))
KIOSKS = int(os.environ.get("BENCH_KIOSKS", "200"))
IDLE_TERMINALS = int(os.environ.get("BENCH_IDLE", "1000"))
BATCH = int(os.environ.get("BENCH_BATCH", "500"))
LOAD_ROUNDS = int(os.environ.get("BENCH_LOAD_ROUNDS", "5"))
GATEWAYS = int(os.environ.get("BENCH_GATEWAYS", "2"))  # the issue's target setup: two side by side
LOAD_RATE = float(os.environ.get("BENCH_LOAD_RATE", "100"))  # loads/s in all, open loop
LOAD_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "20"))
PARTS = set(os.environ.get("BENCH_PARTS", "taps,loads,memory").split(","))  # which figures to measure


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of ``pids`` so far (a process that has gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_pids(postmaster: int | None) -> list[int]:
    """The postmaster and its backends (one per connection) and helpers."""
    if postmaster is None:
        return []
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _cpu_snapshot(gateways: list[int], postmaster: int | None) -> tuple[float, float, float]:
    """CPU seconds of the gateways, of PostgreSQL and of this process (the simulated terminals)."""
    own = os.times()
    return _cpu_seconds(gateways), _cpu_seconds(_postgres_pids(postmaster)), own.user + own.system


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _taps(
    pool: Pool,
    keys: SoftwareKeyStore,
    kek: bytes,
    registry: TerminalRegistry,
    cards: list[SoftwareCard],
    port: int,
    gateway_pids: list[int],
    postmaster: int | None,
) -> None:
    """Offline taps: made before the clock starts; then TAC-only, then end to end."""
    readers: list[BusReader] = []
    now = dt.datetime.now(dt.UTC)
    for i in range(READERS):
        reg = await registry.register(f"BENCH-{i:04d}", operator="bench-bus", kind=TerminalKind.BUS)
        mine = cards[i::READERS]
        psam = SoftwarePsam(reg.psam_terminal_no, {c.app_serial: c.dpk for c in mine})
        reader = BusReader(TerminalLink(reg.id, reg.tmk, "127.0.0.1", port), psam, reg.tmk, batch_size=BATCH)
        for t in range(WARM_TAPS):
            reader.tap(mine[t % len(mine)], 100, now)
        await reader.link.sign_on()
        readers.append(reader)
    # Warm-up, not measured: in service a gateway's pooled connections have prepared their
    # statements and its key store holds the cards' keys; a cold start is a different figure.
    await asyncio.gather(*(r.upload() for r in readers))
    warm_committed = await pool.fetchval(
        "SELECT count(*) FROM card.terminal_records WHERE status = 'accepted'"
    )
    for i, reader in enumerate(readers):
        mine = cards[i::READERS]
        for t in range(WARM_TAPS, WARM_TAPS + TAPS_PER_READER):
            reader.tap(mine[t % len(mine)], 100, now)
    total = READERS * TAPS_PER_READER

    # Baseline: TAC verification alone, the same records; the key store's cache warmed by a first
    # pass, as the gateways' are by the warm-up (the stricter baseline: derivation not counted).
    items = []
    info = {c.app_serial: c for c in cards}
    for reader in readers:
        for record in reader.queue.values():
            card = info[record.app_serial]
            items.append(
                (CardKeyRef(1, card.app_serial, card.issuer_id), purchase_inputs(record), record.tac)
            )
    fresh = SoftwareKeyStore(pool, kek)
    assert all(await fresh.verify_purchase_tacs(items))
    # CPU time, not wall time: the rate of one core doing nothing else, whatever else the machine
    # runs meanwhile (a wall-clock baseline would drop, and flatter the ratio, on a busy host).
    started = time.process_time()
    assert all(await fresh.verify_purchase_tacs(items))
    tac_rate = len(items) / (time.process_time() - started)

    uploads = [(reader.link.terminal_id, list(reader.queue.values())) for reader in readers]
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_snapshot(gateway_pids, postmaster)
    started = time.perf_counter()
    await asyncio.gather(*(r.upload() for r in readers))
    elapsed = time.perf_counter() - started
    # Backends that ended during the run are missed; the pool keeps its connections, so none do.
    cpu = [
        (b - a) / total * 1e6
        for a, b in zip(cpu_before, _cpu_snapshot(gateway_pids, postmaster), strict=True)
    ]
    accepted = sum(r.counts["accepted"] for r in readers) - READERS * WARM_TAPS
    committed = (
        await pool.fetchval("SELECT count(*) FROM card.terminal_records WHERE status = 'accepted'")
        - warm_committed
    )
    assert accepted == total == committed, (accepted, total, committed)
    floor = await tap_floor(
        pool, uploads, {c.app_serial: c.card_number for c in cards}, batch=BATCH, tac_us=1e6 / tac_rate,
        operator="bench-bus",
        postgres_cpu=lambda: _cpu_seconds(_postgres_pids(postmaster)),
    )  # fmt: skip
    emit(BENCH, "verified_taps_per_second", total / elapsed, "taps/s", baseline="tac_verification_only",
         baseline_value=tac_rate, target=">= 10000 taps/s and >= 0.5 x TAC-only", readers=READERS,
         taps=total, batch=BATCH, gateways=len(gateway_pids), load_average=[load_before, os.getloadavg()[0]],
         cpu_us_per_tap={"gateways": cpu[0], "postgres": cpu[1], "terminals": cpu[2]},
         tac_cpu_us_per_tap=round(1e6 / tac_rate, 1), **floor)  # fmt: skip
    for reader in readers:
        await reader.link.close()


async def _commit_probe(pool: Pool, stop: asyncio.Event) -> list[float]:
    """A durable one-row commit every 50 ms on a connection of its own until ``stop``: what a
    commit costs at that moment. Each load waits for two (LOAD's and CONFIRM's), so when the
    disk's flushes stall (this host's did, for 100 ms and more at times) no load can be faster."""
    latencies: list[float] = []
    async with pool.acquire() as db:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS bench_commit_probe (id bigserial PRIMARY KEY, "
            "at timestamptz NOT NULL DEFAULT now())"
        )
        while not stop.is_set():
            t0 = time.perf_counter()
            await db.execute("INSERT INTO bench_commit_probe DEFAULT VALUES")
            latencies.append(time.perf_counter() - t0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
        await db.execute("DROP TABLE bench_commit_probe")
    return sorted(latencies)


async def _loads(pool: Pool, registry: TerminalRegistry, cards: list[SoftwareCard], port: int) -> None:
    """Online loads at ``KIOSKS`` concurrent kiosks, each on its own cards."""
    kiosks = []
    for i in range(KIOSKS):
        reg = await registry.register(f"BK-{i:04d}", operator="bench-kiosk", kind=TerminalKind.KIOSK)
        kiosk = Kiosk(TerminalLink(reg.id, reg.tmk, "127.0.0.1", port), reg.psam_terminal_no)
        await kiosk.link.sign_on()
        kiosks.append(kiosk)
    # Warm-up, not measured: one load per kiosk, so the gateways' pooled connections have prepared
    # the statements of a load and the key store holds the master keys (a cold start is not the
    # latency a customer sees in service).
    await asyncio.gather(*(k.load(cards[-1 - i], 100) for i, k in enumerate(kiosks)))
    # Open loop: loads arrive at LOAD_RATE per second in all (Poisson), each at a random kiosk that
    # is free; a kiosk serves one customer at a time. This is the latency a customer sees.
    rng = random.Random(7)
    latencies: list[float] = []
    free = list(range(KIOSKS))
    running: set[asyncio.Task[None]] = set()
    counter = iter(range(10**9))

    async def serve(k: int) -> None:
        card = cards[(k + KIOSKS * next(counter)) % len(cards)]
        t0 = time.perf_counter()
        answer = await kiosks[k].load(card, 100)
        latencies.append(time.perf_counter() - t0)
        assert answer.result == 0
        free.append(k)

    load_before = os.getloadavg()[0]
    stop_probe = asyncio.Event()
    probe = asyncio.create_task(_commit_probe(pool, stop_probe))
    deadline = time.perf_counter() + LOAD_SECONDS
    while time.perf_counter() < deadline:
        await asyncio.sleep(rng.expovariate(LOAD_RATE))
        if free:
            task = asyncio.create_task(serve(free.pop(rng.randrange(len(free)))))
            running.add(task)
            task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    stop_probe.set()
    commits = await probe
    _latency_figures(
        "online_load", latencies, load_before, rate=LOAD_RATE, arrival="poisson, open loop",
        baseline="a durable one-row commit at the same time (p99; each load waits for two)",
        baseline_value=round(_percentile(commits, 0.99) * 1000, 2),
        commit_ms={"p50": round(_percentile(commits, 0.5) * 1000, 2), "max": round(commits[-1] * 1000, 2),
                   "commits": len(commits)},
    )  # fmt: skip

    # Saturation: every kiosk loads back to back with no pause (closed loop), as many at once as
    # there are kiosks; latency here is queueing on the host's throughput.
    latencies = []

    async def one(kiosk: Kiosk, rounds: int, offset: int) -> None:
        for r in range(rounds):
            card = cards[(offset + r * KIOSKS) % len(cards)]
            t0 = time.perf_counter()
            answer = await kiosk.load(card, 100)
            latencies.append(time.perf_counter() - t0)
            assert answer.result == 0

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    await asyncio.gather(*(one(k, LOAD_ROUNDS, i) for i, k in enumerate(kiosks)))
    rate = len(latencies) / (time.perf_counter() - started)
    _latency_figures(
        "online_load_saturated", latencies, load_before, rate=round(rate, 1), arrival="closed loop"
    )
    for kiosk in kiosks:
        await kiosk.link.close()


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[int(q * (len(ordered) - 1))]


def _latency_figures(
    name: str, latencies: list[float], load_before: float, *, rate: float, arrival: str, **baseline: object
) -> None:
    """The p50 and p99 lines; ``baseline`` (with its commit figures) goes on the p99 line."""
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = _percentile(latencies, 0.99) * 1000
    note = "a load = LOAD + LOAD CONFIRM round trips, card APDUs included"
    emit(BENCH, f"{name}_p50", p50, "ms", kiosks=KIOSKS, loads=len(latencies), note=note, rate=rate,
         arrival=arrival)  # fmt: skip
    emit(BENCH, f"{name}_p99", p99, "ms", target="<= 20 ms", kiosks=KIOSKS, loads=len(latencies),
         load_average=[load_before, os.getloadavg()[0]], rate=rate, arrival=arrival, **baseline)  # fmt: skip


async def _memory(registry: TerminalRegistry, port: int, pids: list[int]) -> None:
    """RSS of fresh gateways (summed), then with ``IDLE_TERMINALS`` connected, signed-on terminals."""
    before = sum(_rss_kb(pid) for pid in pids)
    links = []
    for i in range(IDLE_TERMINALS):
        reg = await registry.register(f"IDLE-{i:05d}", operator="bench-bus", kind=TerminalKind.BUS)
        link = TerminalLink(reg.id, reg.tmk, "127.0.0.1", port)
        await link.sign_on()
        await link.request(Heartbeat(), HeartbeatResponse)
        links.append(link)
    after = sum(_rss_kb(pid) for pid in pids)
    emit(BENCH, "gateway_rss_1000_terminals", after / 1024, "MB", baseline="gateway_rss_idle",
         baseline_value=before / 1024, target="<= 200 MB", terminals=IDLE_TERMINALS,
         gateways=len(pids))  # fmt: skip
    for link in links:
        await link.close()


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
        registry = TerminalRegistry(pool, kek, redis=None)  # registers only
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
        gateways = []
        for _ in range(GATEWAYS):  # side by side on one port (SO_REUSEPORT), as in production
            gateways.append(
                subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
                    [sys.executable, "-m", "card.terminal.gateway"], env=env, stdout=subprocess.PIPE
                )
            )
            assert gateways[-1].stdout is not None
            gateways[-1].stdout.readline()
        gateway = gateways[0]
        profiler: subprocess.Popen[bytes] | None = None
        if os.environ.get("BENCH_PROFILE"):  # e.g. "py-spy record -o /tmp/gw.svg -d 30 -p {pid}"
            profiler = subprocess.Popen(  # noqa: ASYNC220 - local profiling only
                os.environ["BENCH_PROFILE"].format(pid=gateway.pid).split()
            )
        try:
            if "memory" in PARTS:
                await _memory(registry, port, [g.pid for g in gateways])
            if "taps" in PARTS:
                await _taps(
                    pool, keys, kek, registry, cards, port, [g.pid for g in gateways],
                    resolved.postgres.pid if resolved.postgres is not None else None,
                )  # fmt: skip
            if "loads" in PARTS:
                await _loads(pool, registry, cards, port)
        finally:
            if profiler is not None:
                profiler.wait(120)
            for g in gateways:
                g.terminate()
                g.wait(10)
            await pool.close()


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
