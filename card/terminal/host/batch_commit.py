"""Batch upload, the write side: one PostgreSQL transaction per batch (card-protocol.md §4).

The records are inserted with ``ON CONFLICT DO NOTHING RETURNING`` (a re-upload
inserts nothing and is answered "duplicate"; ``_card_counter_clashes`` handles the card's own
counter), the inserted accepted ones are posted to the ledger, failures go to the suspense queue,
gaps and differences to the follow-ups. Each record is stored as the terminal sent it (the bytes
of its ``E3`` item), never encoded again. The checks that fill a :class:`Work` are in
``card.terminal.host.batches``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from card._db import Connection
from card.terminal.host.chains import CardState, flag_card_chains, flag_serial_gaps
from card.terminal.host.ports import CardInfo
from card.terminal.host.registry import TerminalRecord
from card.terminal.messages import BatchUpload, OfflineRecord
from card.terminal.messages.fields import encode_body
from card.terminal.spec import Flag, RecordKind, RecordReason, RecordResult, Tag
from card.terminal.tlv import TLV, encode
from payments.posting import PurchasePosting

if TYPE_CHECKING:
    from card.terminal.host.service import TerminalHost

__all__ = ["BatchWriter", "Work"]


@dataclass(slots=True)
class Work:
    record: OfflineRecord
    reason: RecordReason = RecordReason.NONE
    detail: str = ""
    card: CardInfo | None = None
    card_number: str | None = None
    txn_time: dt.datetime | None = None
    txn_type: int = 0
    counter: int = 0
    flags: list[tuple[Flag, str]] = field(default_factory=list)

    def reject(self, reason: RecordReason, detail: str = "") -> None:
        if self.reason is RecordReason.NONE:
            self.reason, self.detail = reason, detail


class BatchWriter:
    def __init__(self, host: TerminalHost) -> None:
        self.host = host

    async def commit(
        self,
        conn: Connection,
        terminal: TerminalRecord,
        body: BatchUpload,
        works: list[Work],
        raw_items: list[bytes] | None,
    ) -> list[tuple[int, int, int]]:
        last_serial = int(
            await conn.fetchval(
                "SELECT last_serial FROM card.terminals WHERE id = $1 FOR UPDATE", terminal.id
            )
            or 0
        )
        card_serials = list({w.record.app_serial for w in works if w.card and w.record.kind != RecordKind.QR})
        previous = (
            {
                bytes(r["app_serial"]): CardState(
                    int(r["card_counter"]),
                    int(r["balance_before"] or 0) - int(r["amount"]),
                    r["txn_time"],
                )
                for r in await conn.fetch(
                    # Each card's latest accepted record: one short backward index scan per card
                    # (a DISTINCT ON over the cards would read every record of their history).
                    "SELECT s.app_serial, r.card_counter, r.balance_before, r.amount, r.txn_time "
                    "FROM unnest($1::bytea[]) AS s(app_serial) CROSS JOIN LATERAL ("
                    "SELECT card_counter, balance_before, amount, txn_time FROM card.terminal_records t "
                    "WHERE t.app_serial = s.app_serial AND t.status = 'accepted' AND t.kind <> 3 "
                    "ORDER BY t.card_counter DESC LIMIT 1) r",
                    card_serials,
                )
            }
            if card_serials
            else {}
        )
        batch_id = int(
            await conn.fetchval(
                "INSERT INTO card.terminal_batches (terminal_id, batch_number, records, accepted, "
                "duplicates, rejected, amount) VALUES ($1, $2, $3, 0, 0, 0, 0) RETURNING id",
                terminal.id,
                body.batch_number,
                len(works),
            )
        )
        raw = (
            raw_items
            if raw_items is not None
            else [encode(TLV(Tag.ITEM, encode_body(w.record))) for w in works]
        )
        inserted = await self._insert(conn, terminal.id, works, raw=raw, batch_id=batch_id)
        if len(inserted) < len(works):
            inserted |= await self._card_counter_clashes(
                conn, terminal.id, works, inserted, raw=raw, batch_id=batch_id
            )
        fresh = [w for w in works if w.record.terminal_serial in inserted]
        # Everything but the ledger first: the ledger posting takes the ledger's writer lock (held to
        # the commit), so it comes last and the lock is held for as short a time as possible.
        for w in fresh:
            if not w.reason and w.record.amount > 0 and (w.card is None or w.card.ledger_account_id is None):
                w.reject(RecordReason.LEDGER_REFUSED, "the card has no e-purse account")
        accepted = [w for w in fresh if not w.reason]
        await self._suspend(conn, terminal, [w for w in fresh if w.reason])
        flag_serial_gaps(fresh, last_serial)
        await flag_card_chains(conn, accepted, previous)
        followups = [(terminal.id, w.record.terminal_serial, int(f), d) for w in fresh for f, d in w.flags]
        if followups:
            await conn.executemany(
                "INSERT INTO card.terminal_followups (terminal_id, terminal_serial, flag, detail) "
                "VALUES ($1, $2, $3, $4)",
                followups,
            )
        # The card did make these transactions (its counter moved), whatever the ledger says below.
        offline = [
            (w.card.card_id, w.counter + 1) for w in accepted if w.card and w.record.kind != RecordKind.QR
        ]
        await self.host.cards.advance_counters_txn(conn, offline, [])
        await conn.execute(
            "UPDATE card.terminals SET last_serial = GREATEST(last_serial, $2), "
            "last_batch_number = GREATEST(last_batch_number, $3) WHERE id = $1",
            terminal.id,
            max((w.record.terminal_serial for w in works), default=0),
            body.batch_number,
        )
        # Ledger: one transfer per inserted accepted record with an amount, one batch, this transaction.
        postings = []
        for w in accepted:
            if w.record.amount <= 0:
                continue
            assert w.card is not None and w.card.ledger_account_id is not None and w.txn_time is not None
            posting = PurchasePosting(
                card_id=str(w.card.card_id),
                counter=w.counter,
                amount=w.record.amount,
                operator=terminal.operator,
                occurred_at=w.txn_time,
                terminal_id=terminal.id,
                epurse_account_id=w.card.ledger_account_id,  # the card's own account, as card recorded it
            )
            postings.append((w, posting))
        results = await self.host.ledger.post_taps_txn(conn, [p for _, p in postings])
        refused = []
        for (w, _), result in zip(postings, results, strict=True):
            if not result.ok:
                w.reject(RecordReason.LEDGER_REFUSED, result.result.value)
                refused.append(w)
        if refused:  # rare: an e-purse beyond its overdraft limit
            await self._suspend(conn, terminal, refused)
            await conn.execute(
                "DELETE FROM card.terminal_followups f USING unnest($2::bigint[]) AS v(serial) "
                "WHERE f.terminal_id = $1 AND f.terminal_serial = v.serial",
                terminal.id,
                [w.record.terminal_serial for w in refused],
            )
            accepted = [w for w in accepted if not w.reason]
        await conn.execute(
            "UPDATE card.terminal_batches SET accepted = $2, duplicates = $3, rejected = $4, amount = $5 "
            "WHERE id = $1",
            batch_id,
            len(accepted),
            len(works) - len(fresh),
            len(fresh) - len(accepted),
            sum(w.record.amount for w in accepted),
        )
        # (terminal serial, result, reason) per record, in the order received.
        duplicate, rejected, accepted_ = RecordResult.DUPLICATE, RecordResult.REJECTED, RecordResult.ACCEPTED
        return [
            (serial, duplicate, 0)
            if serial not in inserted
            else (serial, rejected, int(w.reason))
            if w.reason
            else (serial, accepted_, 0)
            for w in works
            for serial in (w.record.terminal_serial,)
        ]

    @staticmethod
    async def _insert(
        conn: Connection,
        terminal_id: str,
        works: list[Work],
        *,
        raw: list[bytes],
        batch_id: int,
        only: set[int] | None = None,
    ) -> set[int]:
        """Insert the records (``only``: these serials), suspended when they failed a check; the
        serials inserted. A record whose (terminal, serial) exists, or whose card transaction
        (card, counter, type) an accepted record holds, is skipped, also when a batch committing at
        the same moment wrote it: the insert waits for that batch and then skips."""
        columns: list[list[object]] = [[] for _ in range(18)]
        for i, w in enumerate(works):
            r = w.record
            if only is not None and r.terminal_serial not in only:
                continue
            row = (
                terminal_id, r.terminal_serial, r.kind, r.app_serial, w.card_number, w.counter, w.txn_type,
                r.amount, r.balance_before, w.txn_time, r.line, r.stop, r.entry_stop, r.tac,
                "suspended" if w.reason else "accepted", int(w.reason), batch_id,
                raw[i],
            )  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        rows = await conn.fetch(
            "INSERT INTO card.terminal_records (terminal_id, terminal_serial, kind, app_serial, "
            "card_number, card_counter, txn_type, amount, balance_before, txn_time, line, stop, "
            "entry_stop, tac, status, reason, batch_id, record) "
            "SELECT * FROM unnest($1::text[], $2::bigint[], $3::smallint[], "
            "$4::bytea[], $5::text[], $6::bigint[], $7::smallint[], $8::bigint[], $9::bigint[], "
            "$10::timestamptz[], $11::text[], $12::int[], $13::int[], $14::bytea[], $15::text[], "
            "$16::smallint[], $17::bigint[], $18::bytea[]) "
            "ON CONFLICT DO NOTHING RETURNING terminal_serial",
            *columns,
        )
        return {int(x["terminal_serial"]) for x in rows}

    async def _card_counter_clashes(
        self,
        conn: Connection,
        terminal_id: str,
        works: list[Work],
        inserted: set[int],
        *,
        raw: list[bytes],
        batch_id: int,
    ) -> set[int]:
        """The records the insert skipped that are not this terminal's records again: each found
        its card transaction (card, counter, type) held by an accepted record. With the same TAC it
        is that transaction again (a torn-transaction proof and the record it proves, say): not
        stored, answered "duplicate". With another TAC it is another transaction claiming the
        counter, which the TAC does not cover, so a reader's bug would otherwise drop a real debit
        as a "duplicate": it is refused with DUPLICATE_CARD_COUNTER and stored suspended (outside
        the partial unique index), into the suspense queue. Only the rare skipped records cost a
        look-up; the serials stored here are returned."""
        skipped = [w for w in works if w.record.terminal_serial not in inserted]
        known = {
            int(r["terminal_serial"])
            for r in await conn.fetch(
                "SELECT terminal_serial FROM card.terminal_records "
                "WHERE terminal_id = $1 AND terminal_serial = ANY($2::bigint[])",
                terminal_id,
                [w.record.terminal_serial for w in skipped],
            )
        }
        clashing = [w for w in skipped if w.record.terminal_serial not in known]
        if not clashing:
            return set()
        held = {
            (bytes(r["app_serial"]), int(r["card_counter"]), int(r["txn_type"])): bytes(r["tac"])
            for r in await conn.fetch(
                "SELECT r.app_serial, r.card_counter, r.txn_type, r.tac FROM card.terminal_records r "
                "JOIN unnest($1::bytea[], $2::bigint[], $3::smallint[]) AS v(app_serial, counter, txn_type) "
                "ON r.app_serial = v.app_serial AND r.card_counter = v.counter AND r.txn_type = v.txn_type "
                "WHERE r.status = 'accepted'",
                [w.record.app_serial for w in clashing],
                [w.counter for w in clashing],
                [w.txn_type for w in clashing],
            )
        }
        refused = set()
        for w in clashing:
            if held.get((w.record.app_serial, w.counter, w.txn_type)) != w.record.tac:
                w.reject(RecordReason.DUPLICATE_CARD_COUNTER, f"card counter {w.counter} is another record's")
                refused.add(w.record.terminal_serial)
        if not refused:
            return set()
        return await self._insert(conn, terminal_id, works, raw=raw, batch_id=batch_id, only=refused)

    @staticmethod
    async def _suspend(conn: Connection, terminal: TerminalRecord, works: list[Work]) -> None:
        """Inserted records that failed a check: status ``suspended`` and a suspense queue entry."""
        if not works:
            return
        await conn.execute(
            "UPDATE card.terminal_records r SET status = 'suspended', reason = v.reason "
            "FROM unnest($2::bigint[], $3::smallint[]) AS v(serial, reason) "
            "WHERE r.terminal_id = $1 AND r.terminal_serial = v.serial AND r.status = 'accepted'",
            terminal.id,
            [w.record.terminal_serial for w in works],
            [int(w.reason) for w in works],
        )
        await conn.execute(
            "INSERT INTO card.terminal_suspense (terminal_id, terminal_serial, reason, detail) "
            "SELECT $1, serial, reason, detail FROM unnest($2::bigint[], $3::smallint[], $4::text[]) "
            "AS v(serial, reason, detail) ON CONFLICT DO NOTHING",
            terminal.id,
            [w.record.terminal_serial for w in works],
            [int(w.reason) for w in works],
            [w.detail or w.reason.name for w in works],
        )
