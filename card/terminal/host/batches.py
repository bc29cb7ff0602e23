"""Batch upload: the host checks of card-protocol.md §4 on every record, then one transaction.

Order: structure and time → card look-up → TAC (key store) / QR chain and reader MAC → blacklist →
fare re-rating; then, in **one** PostgreSQL transaction, the records are inserted with
``ON CONFLICT DO NOTHING RETURNING`` (a re-upload inserts nothing and is answered "duplicate"),
the inserted accepted ones are posted to the ledger, failures go to the suspense queue, gaps and
differences to the follow-ups. The answer is built only after the commit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from card._db import Connection
from card.crypto import PurchaseInputs
from card.keys import CardKeyRef
from card.qr import OfflineVerifier, QRRejected
from card.terminal.host.ports import CardInfo
from card.terminal.host.registry import TerminalRecord
from card.terminal.messages import (
    BatchResponse,
    BatchUpload,
    Message,
    OfflineRecord,
    ProtocolError,
    RecordOutcome,
    record_key,
    record_mac,
)
from card.terminal.messages.fields import encode_body
from card.terminal.records import parse_dt7, purchase_inputs, qr_account, qr_mac_input
from card.terminal.spec import Flag, RecordKind, RecordReason, RecordResult, ResultCode, Tag
from card.terminal.tlv import TLV, encode
from payments.posting import PurchasePosting

if TYPE_CHECKING:
    from card.terminal.host.service import TerminalHost

__all__ = ["BatchProcessor"]

QR_TXN_TYPE: Final = 0x88
_CARD_KINDS: Final = frozenset((RecordKind.PURCHASE, RecordKind.COMPOUND, RecordKind.TORN_PROOF))


@dataclass(slots=True)
class _Work:
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


def _structure(work: _Work) -> None:
    r = work.record
    try:
        work.txn_time = parse_dt7(r.txn_time)
    except ValueError:
        work.reject(RecordReason.MALFORMED, "txn_time")
        work.txn_time = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if r.kind in _CARD_KINDS:
        if None in (r.issuer_id, r.balance_before, r.txn_type, r.psam_terminal_no, r.key_version):
            work.reject(RecordReason.MALFORMED, "card record fields")
        elif r.txn_type not in (0x06, 0x09) or (r.kind == RecordKind.COMPOUND and r.txn_type != 0x09):
            work.reject(RecordReason.MALFORMED, "txn_type")
        if r.card_counter > 0xFFFF:
            work.reject(RecordReason.MALFORMED, "card_counter")
        work.txn_type = r.txn_type or 0
        work.counter = r.card_counter
    elif r.kind == RecordKind.QR:
        if None in (r.qr_payload, r.sam_no, r.terminal_node, r.qr_time):
            work.reject(RecordReason.MALFORMED, "QR record fields")
        work.txn_type = QR_TXN_TYPE
        work.counter = r.card_counter
    else:
        work.reject(RecordReason.MALFORMED, "kind")


class BatchProcessor:
    def __init__(self, host: TerminalHost) -> None:
        self.host = host
        self._verifier: tuple[object, OfflineVerifier] | None = None

    async def handle(
        self, terminal: TerminalRecord, body: Message, objects: tuple[TLV, ...] = ()
    ) -> Message | None:
        if not isinstance(body, BatchUpload):
            return None
        items = [obj.value for obj in objects if obj.tag == Tag.ITEM and isinstance(obj.value, tuple)]
        return await self.upload(terminal, body, items if len(items) == len(body.records) else None)

    async def _qr_verifier(self) -> OfflineVerifier:
        params = await self.host.parameters()
        if self._verifier is None or self._verifier[0] is not params:
            keys = await self.host.keys.qr_public_keys()
            verifier = OfflineVerifier(
                keys, params.issuers, lambda _card: False, self.host.card_settings.qr_validity_seconds
            )
            self._verifier = (params, verifier)
        return self._verifier[1]

    async def upload(
        self, terminal: TerminalRecord, body: BatchUpload, items: list[tuple[TLV, ...]] | None = None
    ) -> BatchResponse:
        """``items``: the records' data objects as received (stored as sent, not re-encoded)."""
        settings = self.host.settings
        if len(body.records) > settings.max_batch_records:
            raise ProtocolError(ResultCode.BATCH_TOO_LARGE)
        if len(body.records) != body.record_count:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "record_count")
        serials = [r.terminal_serial for r in body.records]
        if len(set(serials)) != len(serials):
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "a serial occurs twice in the batch")
        works = [_Work(r) for r in body.records]
        now = dt.datetime.now(dt.UTC)
        for w in works:
            _structure(w)
            card_record = w.record.kind in _CARD_KINDS
            if not w.reason and card_record and w.record.psam_terminal_no != terminal.psam_terminal_no:
                w.reject(RecordReason.BAD_TAC, "PSAM terminal number is not this terminal's")
            assert w.txn_time is not None
            if w.txn_time > now + dt.timedelta(seconds=settings.clock_drift_seconds):
                w.reject(RecordReason.CLOCK_DRIFT, "dated in the future")
            elif w.txn_time < now - dt.timedelta(days=settings.upload_age_limit_days):
                w.reject(RecordReason.CLOCK_DRIFT, "older than the upload limit")
        await self._qr_checks(terminal, [w for w in works if w.record.kind == RecordKind.QR and not w.reason])
        async with self.host.pool.acquire() as db:
            await self._card_checks(db, [w for w in works if w.record.kind in _CARD_KINDS and not w.reason])
            listed = await self.host.blacklist.listed(db, [w.card_number for w in works if w.card_number])
            for w in works:
                self._policy_checks(w, listed)
            async with db.transaction():
                outcomes = await self._commit(db, terminal, body, works, items)
        return BatchResponse(
            batch_number=body.batch_number, record_count=len(outcomes), outcomes=tuple(outcomes)
        )

    async def _qr_checks(self, terminal: TerminalRecord, works: list[_Work]) -> None:
        if not works:
            return
        verifier = await self._qr_verifier()
        key = record_key(terminal.tmk)
        validity = self.host.card_settings.qr_validity_seconds
        for w in works:
            r = w.record
            assert r.qr_payload is not None and r.qr_time is not None
            try:
                ride = verifier.verify(r.qr_payload, dt.datetime.fromtimestamp(r.qr_time, dt.UTC), r.amount)
            except QRRejected as exc:
                w.reject(RecordReason.QR_INVALID, exc.reason.value)
                continue
            generated = int(ride.generated_at.timestamp())
            if r.app_serial != qr_account(ride.card_number) or r.card_counter != generated:
                w.reject(RecordReason.QR_INVALID, "account or generation time differs from the QR")
                continue
            if record_mac(key, qr_mac_input(r, validity=validity, generation_time=generated)) != r.tac:
                w.reject(RecordReason.BAD_QR_TAC)
                continue
            w.card_number = ride.card_number
        numbers = [w.card_number for w in works if w.card_number]
        if numbers:
            async with self.host.pool.acquire() as db:
                cards = await self.host.cards.by_number(db, numbers)
            for w in works:
                if w.card_number:
                    w.card = cards.get(w.card_number)
                    if w.card is None:
                        w.reject(RecordReason.UNKNOWN_CARD)

    async def _card_checks(self, db: Connection, works: list[_Work]) -> None:
        if not works:
            return
        cards = await self.host.cards.by_app_serial(db, [w.record.app_serial for w in works])
        items: list[tuple[CardKeyRef, PurchaseInputs, bytes]] = []
        checked: list[_Work] = []
        for w in works:
            card = cards.get(w.record.app_serial)
            if card is None:
                w.reject(RecordReason.UNKNOWN_CARD)
                continue
            w.card, w.card_number = card, card.card_number
            if w.record.key_version != card.key_version:
                w.reject(RecordReason.UNKNOWN_KEY_VERSION, f"card keys are version {card.key_version}")
                continue
            assert w.record.issuer_id is not None
            ref = CardKeyRef(card.key_version, card.app_serial, w.record.issuer_id)
            items.append((ref, purchase_inputs(w.record), w.record.tac))
            checked.append(w)
        results = await self.host.keys.verify_purchase_tacs(items)
        for w, ok in zip(checked, results, strict=True):
            if not ok:
                w.reject(RecordReason.BAD_TAC)

    def _policy_checks(self, w: _Work, listed: dict[str, int]) -> None:
        if w.reason:
            return
        r = w.record
        version = listed.get(w.card_number or "")
        if version is not None:
            if version <= r.blacklist_version:
                w.reject(RecordReason.BLACKLISTED, f"listed in version {version}")
                return
            w.flags.append(
                (Flag.LATE_BLACKLIST, f"listed in version {version} > reader's {r.blacklist_version}")
            )
        if r.balance_before is not None and r.amount > r.balance_before:
            w.flags.append((Flag.BALANCE_CHAIN, f"amount {r.amount} > balance before {r.balance_before}"))
        if r.line is not None and (r.kind != RecordKind.COMPOUND or r.entry_stop is not None):
            expected = self.host.fares.fare(r.line, r.entry_stop, r.stop)
            if expected != r.amount:
                w.flags.append((Flag.FARE_MISMATCH, f"charged {r.amount}, fare table says {expected}"))

    async def _commit(
        self,
        conn: Connection,
        terminal: TerminalRecord,
        body: BatchUpload,
        works: list[_Work],
        items: list[tuple[TLV, ...]] | None,
    ) -> list[RecordOutcome]:
        last_serial = int(
            await conn.fetchval(
                "SELECT last_serial FROM card.terminals WHERE id = $1 FOR UPDATE", terminal.id
            )
            or 0
        )
        card_serials = list({w.record.app_serial for w in works if w.card and w.record.kind != RecordKind.QR})
        previous = (
            {
                bytes(r["app_serial"]): (
                    int(r["card_counter"]),
                    int(r["balance_before"] or 0) - int(r["amount"]),
                )
                for r in await conn.fetch(
                    "SELECT DISTINCT ON (app_serial) app_serial, card_counter, balance_before, amount "
                    "FROM card.terminal_records WHERE app_serial = ANY($1::bytea[]) AND status = 'accepted' "
                    "AND kind <> 3 ORDER BY app_serial, card_counter DESC",
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
        columns: list[list[object]] = [[] for _ in range(18)]
        raw = [encode(TLV(Tag.ITEM, children)) for children in items] if items is not None else None
        for i, w in enumerate(works):
            r = w.record
            row = (
                terminal.id, r.terminal_serial, r.kind, r.app_serial, w.card_number, w.counter, w.txn_type,
                r.amount, r.balance_before, w.txn_time, r.line, r.stop, r.entry_stop, r.tac,
                "suspended" if w.reason else "accepted", int(w.reason), batch_id,
                raw[i] if raw is not None else encode(TLV(Tag.ITEM, _encode_record(r))),
            )  # fmt: skip
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        inserted = {
            int(x["terminal_serial"])
            for x in await conn.fetch(
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
        }
        fresh = [w for w in works if w.record.terminal_serial in inserted]
        # Everything but the ledger first: the ledger posting takes the ledger's writer lock (held to
        # the commit), so it comes last and the lock is held for as short a time as possible.
        for w in fresh:
            if not w.reason and w.record.amount > 0 and (w.card is None or w.card.ledger_account_id is None):
                w.reject(RecordReason.LEDGER_REFUSED, "the card has no e-purse account")
        accepted = [w for w in fresh if not w.reason]
        await self._suspend(conn, terminal, [w for w in fresh if w.reason])
        self._gaps(accepted, previous, last_serial)
        followups = [(terminal.id, w.record.terminal_serial, int(f), d) for w in accepted for f, d in w.flags]
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
        outcomes = []
        for w in works:
            if w.record.terminal_serial not in inserted:
                outcomes.append(
                    RecordOutcome(terminal_serial=w.record.terminal_serial, result=RecordResult.DUPLICATE)
                )
            elif w.reason:
                outcomes.append(
                    RecordOutcome(
                        terminal_serial=w.record.terminal_serial,
                        result=RecordResult.REJECTED,
                        reason=w.reason,
                    )
                )
            else:
                outcomes.append(
                    RecordOutcome(terminal_serial=w.record.terminal_serial, result=RecordResult.ACCEPTED)
                )
        return outcomes

    @staticmethod
    async def _suspend(conn: Connection, terminal: TerminalRecord, works: list[_Work]) -> None:
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

    @staticmethod
    def _gaps(accepted: list[_Work], previous: dict[bytes, tuple[int, int]], last_serial: int) -> None:
        expected_serial = last_serial + 1
        for w in sorted(accepted, key=lambda x: x.record.terminal_serial):
            if last_serial and w.record.terminal_serial > expected_serial:
                w.flags.append(
                    (Flag.SERIAL_GAP, f"serials {expected_serial}..{w.record.terminal_serial - 1} missing")
                )
            expected_serial = max(expected_serial, w.record.terminal_serial + 1)
        state = dict(previous)
        for w in sorted(accepted, key=lambda x: (x.record.app_serial, x.counter)):
            r = w.record
            if r.kind == RecordKind.QR:
                continue
            prior = state.get(r.app_serial)
            if prior is not None:
                counter, balance_after = prior
                if w.counter > counter + 1:
                    w.flags.append(
                        (Flag.COUNTER_GAP, f"card counters {counter + 1}..{w.counter - 1} missing")
                    )
                elif (
                    w.counter == counter + 1
                    and r.balance_before is not None
                    and r.balance_before != balance_after
                ):
                    w.flags.append(
                        (
                            Flag.BALANCE_CHAIN,
                            f"balance before {r.balance_before}, previous after {balance_after}",
                        )
                    )
            state[r.app_serial] = (w.counter, (r.balance_before or 0) - r.amount)


def _encode_record(record: OfflineRecord) -> tuple[TLV, ...]:
    return encode_body(record)
