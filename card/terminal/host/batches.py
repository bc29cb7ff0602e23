"""Batch upload: the host checks of card-protocol.md §4 on every record, then one transaction.

Order: structure and time → card look-up → TAC (key store) / QR chain and reader MAC → blacklist →
fare re-rating; then, in **one** PostgreSQL transaction (``batch_commit``), the records are
inserted with ``ON CONFLICT DO NOTHING RETURNING`` (a re-upload inserts nothing
and is answered "duplicate", as is a card transaction already accepted; another record claiming
its card counter is refused), the inserted accepted ones are posted to the ledger, failures go to
the suspense queue, gaps and differences to the follow-ups. The answer is built only after the
commit.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from card.qr import OfflineVerifier
from card.terminal.host.batch_commit import BatchWriter, Work
from card.terminal.host.ports import FareRater
from card.terminal.host.record_checks import (
    CARD_KINDS,
    check_psam,
    check_qr,
    check_structure,
    match_cards,
    qr_verifier,
)
from card.terminal.host.registry import TerminalRecord
from card.terminal.messages import (
    BatchResponse,
    BatchUpload,
    EncodedBody,
    Message,
    ProtocolError,
    record_key,
)
from card.terminal.messages.batch import encode_outcomes
from card.terminal.messages.fields import encode_body
from card.terminal.spec import Flag, RecordKind, RecordReason, ResultCode, Tag
from card.terminal.tlv import encode, spans

if TYPE_CHECKING:
    from card.terminal.host.service import TerminalHost

__all__ = ["BatchProcessor"]


class BatchProcessor:
    def __init__(self, host: TerminalHost) -> None:
        self.host = host
        self._verifier: tuple[object, OfflineVerifier] | None = None
        self.writer = BatchWriter(host)

    async def handle(
        self, terminal: TerminalRecord, body: Message, signed: bytes = b""
    ) -> EncodedBody | None:
        """``signed``: the message as received (header and body), so each record is stored as sent."""
        if not isinstance(body, BatchUpload):
            return None
        return await self.upload(terminal, body, _raw_items(signed, len(body.records)))

    async def _qr_verifier(self) -> OfflineVerifier:
        # Rebuilt when the host's platform parameters change (a rotated QR key), not otherwise:
        # the verifier caches checked authorisations.
        platform = await self.host.downloads.platform()
        if self._verifier is None or self._verifier[0] is not platform:
            verifier = qr_verifier(
                platform.qr_keys, platform.parameters.issuers, self.host.card_settings.qr_validity_seconds
            )
            self._verifier = (platform, verifier)
        return self._verifier[1]

    async def upload(
        self, terminal: TerminalRecord, body: BatchUpload, raw_items: list[bytes] | None = None
    ) -> EncodedBody:
        """``raw_items``: each record's ``E3`` object as received (None: encode the records)."""
        settings = self.host.settings
        if len(body.records) > settings.max_batch_records:
            raise ProtocolError(ResultCode.BATCH_TOO_LARGE)
        if len(body.records) != body.record_count:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "record_count")
        serials = [r.terminal_serial for r in body.records]
        if len(set(serials)) != len(serials):
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "a serial occurs twice in the batch")
        works = [Work(r) for r in body.records]
        now = dt.datetime.now(dt.UTC)
        for w in works:
            check_structure(w)
            check_psam(w, terminal.psam_terminal_no)
            assert w.txn_time is not None
            if w.txn_time > now + dt.timedelta(seconds=settings.clock_drift_seconds):
                w.reject(RecordReason.CLOCK_DRIFT, "dated in the future")
            elif w.txn_time < now - dt.timedelta(days=settings.upload_age_limit_days):
                w.reject(RecordReason.CLOCK_DRIFT, "older than the upload limit")
        await self._qr_checks(terminal, [w for w in works if w.record.kind == RecordKind.QR and not w.reason])
        card_works = [w for w in works if w.record.kind in CARD_KINDS and not w.reason]
        async with self.host.pool.acquire() as db:
            app_serials = [w.record.app_serial for w in card_works]
            cards = await self.host.cards.by_app_serial(db, app_serials) if app_serials else {}
            checked, items = match_cards(card_works, cards, self.host.card_settings.issuer_id)
            listed = await self.host.blacklist.listed(db, [w.card_number for w in works if w.card_number])
            rated = [w.txn_time for w in works if w.record.line is not None and w.txn_time and not w.reason]
            rater = await self.host.fares.rater(db, terminal.operator, rated)
        # No pooled connection is held while the key store works: it reads master keys through the
        # pool on first use, and batches holding every connection while they waited for it would
        # wait for ever (seen at a cold start with more readers than connections).
        results = await self.host.keys.verify_purchase_tacs(items)
        for w, ok in zip(checked, results, strict=True):
            if not ok:
                w.reject(RecordReason.BAD_TAC)
        for w in works:
            self._policy_checks(w, listed, rater)
        async with self.host.pool.acquire() as db, db.transaction():
            outcomes = await self.writer.commit(db, terminal, body, works, raw_items)
        head = BatchResponse(batch_number=body.batch_number, record_count=len(outcomes))
        return EncodedBody(BatchResponse.TYPE, encode(encode_body(head)) + encode_outcomes(outcomes))

    async def _qr_checks(self, terminal: TerminalRecord, works: list[Work]) -> None:
        if not works:
            return
        verifier = await self._qr_verifier()
        key = record_key(terminal.tmk)
        validity = self.host.card_settings.qr_validity_seconds
        for w in works:
            check_qr(w, verifier, key, validity)
        numbers = [w.card_number for w in works if w.card_number]
        if numbers:
            async with self.host.pool.acquire() as db:
                cards = await self.host.cards.by_number(db, numbers)
            for w in works:
                if w.card_number:
                    w.card = cards.get(w.card_number)
                    if w.card is None:
                        w.reject(RecordReason.UNKNOWN_CARD)

    def _policy_checks(self, w: Work, listed: dict[str, int], rater: FareRater) -> None:
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
            assert w.txn_time is not None
            # The line fare before concessions and transfer or cap discounts (the reader applies
            # those), so a concession ride is flagged for a look, never refused.
            expected = rater.fare(w.txn_time, r.line, r.entry_stop, r.stop)
            if expected is not None and expected[0] != r.amount:
                fare, version = expected
                w.flags.append((Flag.FARE_MISMATCH, f"charged {r.amount}, fare table v{version} says {fare}"))


def _raw_items(signed: bytes, count: int) -> list[bytes] | None:
    """The bytes of each ``E3`` item of the body of an already decoded message, in order."""
    if not signed:
        return None
    top = spans(signed)
    if len(top) != 2 or top[1].tag != Tag.BODY:
        return None
    body = top[1]
    items = [signed[x.start : x.end] for x in spans(signed, body.value, body.end) if x.tag == Tag.ITEM]
    return items if len(items) == count else None
