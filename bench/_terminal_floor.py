"""The floor under the end-to-end tap rate: what the parts every verified tap needs cost alone.

The issue's ratio (taps/s ÷ TAC-only rate) asks how much the protocol, database and ledger cost on
top of the cryptography. Its ceiling follows from the CPU each tap cannot do without, measured here
one part at a time on the same records, each on one core with nothing else running:

- ``decode``: a batch message opened, its MAC checked and its records decoded (the wire codec);
- ``tac``: the TAC check through the key store (its keys cached, as in service): the run's
  TAC-only baseline;
- ``postgres``: PostgreSQL's CPU to store the records and nothing else, into a copy of
  ``card.terminal_records`` with its keys and indexes (the two that make a tap count once), one
  transaction per batch, committed as the host commits; no ledger, no card counters, no look-ups;
- ``driver``: asyncpg's side of that insert (encoding the arrays, reading the answer);
- ``ledger``: PostgreSQL's CPU to post the same taps to the ledger alone (``payments.posting``, one
  transfer per tap, one transaction per batch), under card counters no real tap uses, and
  ``ledger_driver`` this process's side of it.

With ``cores`` cores, no tap rate can pass ``cores / sum(floor)``, so the ratio cannot pass
``cores × tac / sum(floor)`` (``ratio_ceiling``), before the look-ups, the answer, the kernel's TCP
and the terminals take anything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from backend.db import Pool
from card.terminal.host.ports import CardDirectory
from card.terminal.messages import BatchUpload, EncodedBody, OfflineRecord, open_message
from card.terminal.messages.envelope import seal
from card.terminal.messages.fields import encode_body
from card.terminal.records import parse_dt7
from card.terminal.spec import Tag
from card.terminal.tlv import TLV, encode
from payments.posting import PurchasePosting, post_purchases

__all__ = ["tap_floor"]

_INSERT = (
    "INSERT INTO bench_floor.records (terminal_id, terminal_serial, kind, app_serial, card_number, "
    "card_counter, txn_type, amount, balance_before, txn_time, line, stop, entry_stop, tac, status, "
    "reason, batch_id, record) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::bytea[], $5::text[], "
    "$6::bigint[], $7::smallint[], $8::bigint[], $9::bigint[], $10::timestamptz[], $11::text[], "
    "$12::int[], $13::int[], $14::bytea[], $15::text[], $16::smallint[], $17::bigint[], $18::bytea[]) "
    "ON CONFLICT DO NOTHING RETURNING terminal_serial"
)


# Card counters are 2 bytes (card-protocol.md §1.1, §1.8): a transfer keyed above them is no real tap's.
_FLOOR_COUNTER = 1 << 20


def _batches(records: Sequence[OfflineRecord], size: int) -> list[list[OfflineRecord]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


async def tap_floor(
    pool: Pool,
    uploads: Sequence[tuple[str, Sequence[OfflineRecord]]],
    card_numbers: dict[bytes, str],
    *,
    operator: str,
    batch: int,
    tac_us: float,
    postgres_cpu: Callable[[], float],
) -> dict[str, Any]:
    """``uploads``: (terminal id, its records) as the readers send them; ``tac_us``: the TAC-only
    baseline's CPU per tap (the same records, measured by the caller); ``postgres_cpu``: the CPU
    seconds PostgreSQL's processes have used so far. Returns µs per tap by part and the ceilings."""
    key = os.urandom(16)
    messages: list[bytes] = []
    for terminal_id, records in uploads:
        for n, chunk in enumerate(_batches(records, batch), start=1):
            head = encode(encode_body(BatchUpload(batch_number=n, record_count=len(chunk))))
            items = b"".join(encode(TLV(Tag.ITEM, encode_body(r))) for r in chunk)
            body = EncodedBody(BatchUpload.TYPE, head + items)
            messages.append(seal(body, terminal_id=terminal_id, sequence=n, time=int(time.time()), key=key))
    count = sum(len(records) for _, records in uploads)

    started = time.process_time()
    decoded: list[tuple[str, tuple[OfflineRecord, ...]]] = []
    for message in messages:
        envelope = open_message(message)
        assert envelope.verify(key)
        upload = envelope.body()
        assert isinstance(upload, BatchUpload)
        decoded.append((envelope.header.terminal_id, upload.records))
    decode_us = (time.process_time() - started) / count * 1e6

    async with pool.acquire() as db:
        await db.execute("DROP SCHEMA IF EXISTS bench_floor CASCADE; CREATE SCHEMA bench_floor")
        await db.execute("CREATE TABLE bench_floor.records (LIKE card.terminal_records INCLUDING ALL)")
        try:
            columns = []
            for terminal_id, records in decoded:
                rows = [
                    (terminal_id, r.terminal_serial, r.kind, r.app_serial, card_numbers.get(r.app_serial),
                     r.card_counter, r.txn_type or 0, r.amount, r.balance_before, parse_dt7(r.txn_time),
                     r.line, r.stop, r.entry_stop, r.tac, "accepted", 0, 0, raw)
                    for r in records
                    for raw in (encode(TLV(Tag.ITEM, encode_body(r))),)
                ]  # fmt: skip
                columns.append([list(c) for c in zip(*rows, strict=True)])
            pg_before, own_before = postgres_cpu(), time.process_time()
            for arrays in columns:
                async with db.transaction():
                    stored = await db.fetch(_INSERT, *arrays)
                    assert len(stored) == len(arrays[0]), "the floor's records are distinct"
            postgres_us = (postgres_cpu() - pg_before) / count * 1e6
            driver_us = (time.process_time() - own_before) / count * 1e6
        finally:
            await db.execute("DROP SCHEMA bench_floor CASCADE")
        cards = await CardDirectory().by_app_serial(db, card_numbers)
        postings = [
            [
                PurchasePosting(
                    card_id=str(card.card_id), counter=_FLOOR_COUNTER + r.card_counter, amount=r.amount,
                    operator=operator, occurred_at=parse_dt7(r.txn_time), terminal_id=terminal_id,
                    epurse_account_id=card.ledger_account_id,
                )
                for r in records
                for card in (cards[r.app_serial],)
            ]
            for terminal_id, records in decoded
        ]  # fmt: skip
        pg_before, own_before = postgres_cpu(), time.process_time()
        for taps in postings:
            async with db.transaction():
                assert all(p.ok for p in await post_purchases(db, taps))
        ledger_us = (postgres_cpu() - pg_before) / count * 1e6
        ledger_driver_us = (time.process_time() - own_before) / count * 1e6

    floor = {
        "decode": decode_us, "tac": tac_us, "postgres": postgres_us, "driver": driver_us,
        "ledger": ledger_us, "ledger_driver": ledger_driver_us,
    }  # fmt: skip
    total = sum(floor.values())
    cores = os.cpu_count() or 1
    return {
        "floor_us_per_tap": {k: round(v, 1) for k, v in floor.items()},
        "floor_total_us": round(total, 1),
        "cores": cores,
        "taps_per_second_ceiling": round(cores / total * 1e6),
        "ratio_ceiling": round(cores * tac_us / total, 3),
    }
