"""``citizen-terminals``: simulated bus readers, kiosks and phones against a running platform.

    citizen-terminals load  --readers 50 --kiosks 5 --cards 10000 --duration 60
    citizen-terminals bus   --taps 20          one reader: taps, upload, per-record results
    citizen-terminals kiosk --amount 5000      one kiosk: an online load
    citizen-terminals phone --authorisation HEX --device-key PEM   prints a ride QR (base45)

Terminals and test cards are set up through the platform's admin API (development only), exactly
as an operator and the card bureau would: registration answers each TMK, the test fleet answers
signed personalisation records sealed to this tool's transport key. The admin API needs an
operator with the ``security_admin`` role: ``--operator``/``--password`` (``citizen serve --demo``
prints the demo operator's) or ``--token`` (``CITIZEN_TERMINALS_OPERATOR``, ``…_PASSWORD``,
``…_TOKEN``). ``load`` exits 1 when any tap
was not acknowledged as accepted (or duplicate of an accepted one), i.e. when anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from card.qr import build_qr_payload, encode_qr_text
from card.terminal.spec import RecordResult
from mock_terminals.bus import BusReader, Kiosk, SoftwarePsam, TapRefused
from mock_terminals.card import SoftwareCard, open_personalisation
from mock_terminals.link import LinkError, TerminalLink

__all__ = ["main"]


@dataclass
class Stats:
    taps: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    loads: int = 0
    load_failures: int = 0
    batch_latency: list[float] = field(default_factory=list)
    load_latency: list[float] = field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Platform:
    def __init__(self, args: argparse.Namespace) -> None:
        self.http = httpx.AsyncClient(base_url=args.api, timeout=600)
        self.host, self.port = args.host, args.port
        self.transport = ec.generate_private_key(ec.SECP256R1())
        self.run = uuid.uuid4().hex[:6].upper()
        self._token: str | None = args.token or None
        self._operator: str = args.operator
        self._password: str | None = args.password or None

    async def sign_in(self) -> None:
        """An operator session for the admin API (``security_admin``)."""
        if self._token is None:
            if self._password is None:
                raise SystemExit(
                    "citizen-terminals: the admin API needs an operator: pass --password (the demo "
                    "operator's is printed by `citizen serve --demo`) or --token"
                )
            response = await self.http.post(
                "/api/v1/identity/operator-sessions",
                json={"username": self._operator, "password": self._password},
            )
            if response.status_code != 201:
                raise SystemExit(f"citizen-terminals: operator sign-in refused ({response.status_code})")
            self._token = str(response.json()["token"])
        self.http.headers["Authorization"] = f"Bearer {self._token}"

    async def register(self, name: str, kind: str, operator: str) -> tuple[str, bytes, bytes]:
        terminal_id = f"{name}-{self.run}"
        body = {"id": terminal_id, "operator": operator, "kind": kind, "line": "B1"}
        response = await self.http.post("/api/v1/admin/terminals", json=body)
        response.raise_for_status()
        answer = response.json()
        return terminal_id, bytes.fromhex(answer["tmk"]), bytes.fromhex(answer["psam_terminal_no"])

    async def cards(self, count: int, balance: int) -> list[SoftwareCard]:
        point = self.transport.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint).hex()
        cards: list[SoftwareCard] = []
        while len(cards) < count:
            chunk = min(2000, count - len(cards))
            response = await self.http.post(
                "/api/v1/admin/terminals/test-fleet",
                json={"cards": chunk, "balance": balance, "transport_public_key": point},
            )
            response.raise_for_status()
            documents = response.json()["documents"]
            cards += [open_personalisation(d.encode(), self.transport, balance=balance) for d in documents]
            print(f"\r  cards personalised: {len(cards)}/{count}", end="", flush=True)
        print()
        return cards

    def link(self, terminal_id: str, tmk: bytes) -> TerminalLink:
        return TerminalLink(terminal_id, tmk, self.host, self.port)


@dataclass
class Run:
    platform: Platform
    stats: Stats
    stop: asyncio.Event
    limit: int = 0  # stop after this many taps in all (0: until stopped)
    batch: int = 200


async def _reader(run: Run, index: int, cards: list[SoftwareCard]) -> BusReader:
    stats = run.stats
    terminal_id, tmk, psam_no = await run.platform.register(f"BUS{index:03d}", "bus", "bus-co")
    psam = SoftwarePsam(psam_no, {c.app_serial: c.dpk for c in cards})
    reader = BusReader(run.platform.link(terminal_id, tmk), psam, tmk, batch_size=run.batch)
    await reader.link.sign_on()
    rng = random.Random(index)  # noqa: S311 - which card taps next, not a secret
    while not run.stop.is_set() and (run.limit <= 0 or stats.taps < run.limit):
        now = dt.datetime.now(dt.UTC)
        for _ in range(run.batch):
            try:
                reader.tap(rng.choice(cards), 200, now)
                stats.taps += 1
            except TapRefused:
                continue
            if stats.taps % 20 == 0:
                await asyncio.sleep(0)  # let kiosks and uploads run between taps
        await _flush(reader, stats)
    await _flush(reader, stats)
    await reader.link.close()
    return reader


async def _flush(reader: BusReader, stats: Stats) -> None:
    before = dict(reader.counts)
    started = time.perf_counter()
    await reader.upload()
    stats.batch_latency.append(time.perf_counter() - started)
    stats.accepted += reader.counts["accepted"] - before["accepted"]
    stats.duplicates += reader.counts["duplicate"] - before["duplicate"]
    stats.rejected += reader.counts["rejected"] - before["rejected"]


async def _kiosk(run: Run, index: int, cards: list[SoftwareCard]) -> None:
    stats = run.stats
    terminal_id, tmk, psam_no = await run.platform.register(f"KIOSK{index:02d}", "kiosk", "kiosk-co")
    kiosk = Kiosk(run.platform.link(terminal_id, tmk), psam_no)
    rng = random.Random(1000 + index)  # noqa: S311
    while not run.stop.is_set():
        card = rng.choice(cards)
        started = time.perf_counter()
        try:
            answer = await kiosk.load(card, 1000)
            ok = answer.result == 0
        except (LinkError, TapRefused):
            ok = False
        stats.load_latency.append(time.perf_counter() - started)
        stats.loads += ok
        stats.load_failures += not ok
        await asyncio.sleep(0.05)
    await kiosk.link.close()


async def _load(args: argparse.Namespace) -> int:
    platform = Platform(args)
    await platform.sign_in()
    print(f"citizen-terminals load: {args.readers} readers, {args.kiosks} kiosks, {args.cards} cards")
    cards = await platform.cards(args.cards, 1_000_000)
    # Each reader and each kiosk owns a disjoint set of cards: one card is in one place at a time.
    reserved = max(args.kiosks * 20, 1) if args.kiosks else 0
    kiosk_cards, tap_cards = cards[:reserved] or cards, cards[reserved:] or cards
    slices = [tap_cards[i :: args.readers] or tap_cards for i in range(args.readers)]
    stats, stop = Stats(), asyncio.Event()
    run = Run(platform, stats, stop, args.taps, args.batch)
    started = time.perf_counter()
    readers_running = [asyncio.create_task(_reader(run, i, slices[i])) for i in range(args.readers)]
    kiosks_running = [
        asyncio.create_task(_kiosk(run, i, kiosk_cards[i :: args.kiosks] or kiosk_cards))
        for i in range(args.kiosks)
    ]
    while not all(t.done() for t in readers_running):
        elapsed = time.perf_counter() - started
        if args.duration and elapsed >= args.duration:
            stop.set()
        rate = stats.accepted / elapsed if elapsed else 0
        line = f"\r  {elapsed:6.1f}s  taps {stats.taps:>9}  accepted {stats.accepted:>9}  "
        line += f"dup {stats.duplicates}  rejected {stats.rejected}  loads {stats.loads}  {rate:8.0f}/s"
        print(line, end="", flush=True)
        await asyncio.sleep(0.5)
    stop.set()
    readers = [t.result() for t in readers_running]
    await asyncio.gather(*kiosks_running)
    elapsed = time.perf_counter() - started
    await platform.http.aclose()
    lost = sum(len(r.queue) for r in readers)
    lost += sum(1 for r in readers for result, _ in r.results.values() if result == RecordResult.REJECTED)
    lost += max(0, stats.taps - stats.accepted - stats.duplicates - stats.rejected)
    batch, loads = stats.batch_latency, stats.load_latency
    print(f"\n\n  taps sent      {stats.taps}\n  accepted       {stats.accepted}")
    print(f"  duplicates     {stats.duplicates}\n  rejected       {stats.rejected}\n  lost           {lost}")
    print(f"  rate           {stats.accepted / elapsed:.0f} taps/s over {elapsed:.1f} s")
    print(f"  batch latency  p50 {_pct(batch, 0.5):.1f} ms  p99 {_pct(batch, 0.99):.1f} ms")
    print(f"  online loads   {stats.loads} ok, {stats.load_failures} failed")
    # The kiosks run on this process's event loop beside the readers' card cryptography: with
    # readers running, this is the latency seen here, queueing behind them included.
    shared = " (this process also ran the readers)" if args.readers and args.kiosks else ""
    print(f"  load latency   p50 {_pct(loads, 0.5):.1f} ms  p99 {_pct(loads, 0.99):.1f} ms{shared}")
    return 1 if lost or stats.load_failures else 0


async def _bus(args: argparse.Namespace) -> int:
    platform = Platform(args)
    await platform.sign_in()
    cards = await platform.cards(max(1, args.cards), 10_000)
    run = Run(platform, Stats(), asyncio.Event(), args.taps, min(args.taps, 200))
    reader = await _reader(run, 0, cards)
    await platform.http.aclose()
    for serial, (result, reason) in sorted(reader.results.items()):
        print(f"  serial {serial:>6}  {RecordResult(result).name.lower():9}  reason {reason}")
    return 0 if not reader.queue else 1


async def _kiosk_once(args: argparse.Namespace) -> int:
    platform = Platform(args)
    await platform.sign_in()
    [card] = await platform.cards(1, 0)
    terminal_id, tmk, psam_no = await platform.register("KIOSK", "kiosk", "kiosk-co")
    kiosk = Kiosk(platform.link(terminal_id, tmk), psam_no)
    answer = await kiosk.load(card, args.amount)
    await kiosk.link.close()
    await platform.http.aclose()
    print(f"  load of {args.amount} fen: result {answer.result:04X}; card balance now {card.balance}")
    return 0 if answer.result == 0 else 1


def _phone(args: argparse.Namespace) -> int:
    with open(args.device_key, "rb") as handle:
        key = load_pem_private_key(handle.read(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    payload = build_qr_payload(bytes.fromhex(args.authorisation), key, dt.datetime.now(dt.UTC))
    print(encode_qr_text(payload))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citizen-terminals", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get("CITIZEN_PUBLIC_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--host", default=os.environ.get("CITIZEN_TERMINAL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CITIZEN_TERMINAL_PORT", "9100")))
    parser.add_argument(
        "--operator",
        default=os.environ.get("CITIZEN_TERMINALS_OPERATOR", "demo-admin"),
        help="operator username",
    )
    parser.add_argument("--password", default=os.environ.get("CITIZEN_TERMINALS_PASSWORD"))
    parser.add_argument(
        "--token", default=os.environ.get("CITIZEN_TERMINALS_TOKEN"), help="operator bearer token"
    )
    sub = parser.add_subparsers(dest="mode", required=True)
    load = sub.add_parser("load", help="N readers and K kiosks against the gateway")
    load.add_argument("--readers", type=int, default=50)
    load.add_argument("--kiosks", type=int, default=5)
    load.add_argument("--cards", type=int, default=10_000)
    load.add_argument("--duration", type=float, default=60.0, help="seconds (0: until --taps)")
    load.add_argument("--taps", type=int, default=0, help="stop after this many taps (0: duration only)")
    load.add_argument("--batch", type=int, default=200)
    bus = sub.add_parser("bus", help="one bus reader")
    bus.add_argument("--taps", type=int, default=20)
    bus.add_argument("--cards", type=int, default=5)
    kiosk = sub.add_parser("kiosk", help="one kiosk load")
    kiosk.add_argument("--amount", type=int, default=5000)
    phone = sub.add_parser("phone", help="print a ride QR code from an authorisation")
    phone.add_argument("--authorisation", required=True, help="hex of the 123-byte authorisation")
    phone.add_argument("--device-key", required=True, help="PEM file of the device's P-256 key")
    args = parser.parse_args(argv)
    if args.mode == "phone":
        return _phone(args)
    runner = {"load": _load, "bus": _bus, "kiosk": _kiosk_once}[args.mode]
    try:
        return asyncio.run(runner(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
