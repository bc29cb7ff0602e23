"""A software PSAM and a bus reader (offline taps, QR scans, store and forward, blacklist).

Simplification, said plainly: a real PSAM holds the issuer's purchase master key and diversifies
the card's DPK inside itself (card-protocol.md §1.3); this software PSAM is handed the DPKs of the
cards it will meet (from their personalisation records) instead, because the platform's key store
never releases a master key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from card.crypto import (
    PurchaseInputs,
    debit_for_purchase_command,
    initialize_for_purchase_command,
    parse_purchase_init_response,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
    verify_mac,
)
from card.qr import OfflineVerifier, QRRejected
from card.terminal.frame import MAX_FRAME_SIZE
from card.terminal.messages import (
    BatchResponse,
    BatchUpload,
    Blacklist,
    BlacklistResponse,
    EncodedBody,
    OfflineRecord,
    Parameters,
    ParametersResponse,
    record_key,
    record_mac,
    seal,
)
from card.terminal.messages.fields import encode_body
from card.terminal.records import dt7, qr_account, qr_mac_input
from card.terminal.spec import DEFAULT_MAX_BATCH_RECORDS, RecordKind, RecordResult, ResultCode, Tag
from card.terminal.tlv import TLV, encode
from mock_terminals.card import SW_OK, SoftwareCard, TapRefused
from mock_terminals.kiosk import Kiosk
from mock_terminals.link import LinkError, TerminalLink

__all__ = ["BusReader", "Kiosk", "SoftwarePsam", "TapRefused"]


@dataclass
class SoftwarePsam:
    terminal_no: bytes  # 6 bytes
    card_keys: dict[bytes, bytes] = field(default_factory=dict)  # app serial -> DPK (see module doc)
    serial: int = 0

    def mac1(
        self, app_serial: bytes, rnd: bytes, counter: int, inputs_for: Callable[[int], PurchaseInputs]
    ) -> tuple[int, bytes, bytes]:
        """``(terminal txn serial, MAC1, SESPK)`` for the card's INITIALIZE answer (PSAM 80 70)."""
        self.serial += 1
        sespk = purchase_session_key(self.card_keys[app_serial], rnd, counter, self.serial)
        return self.serial, purchase_mac1(sespk, inputs_for(self.serial)), sespk


@dataclass
class BusReader:
    link: TerminalLink
    psam: SoftwarePsam
    tmk: bytes
    line: str = "B1"
    batch_size: int = 200
    queue: dict[int, OfflineRecord] = field(default_factory=dict)  # serial -> record, until acknowledged
    blacklist: set[str] = field(default_factory=set)
    blacklist_version: int = 0
    verifier: OfflineVerifier | None = None
    qr_validity: int = 60
    batch_number: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "duplicate": 0, "rejected": 0})
    results: dict[int, tuple[int, int]] = field(default_factory=dict)
    _encoded_records: dict[int, tuple[OfflineRecord, bytes]] = field(default_factory=dict, repr=False)
    _overhead: int | None = field(default=None, repr=False)

    def tap(
        self,
        card: SoftwareCard,
        amount: int,
        now: dt.datetime,
        *,
        entry_stop: int | None = None,
        stop: int | None = None,
    ) -> OfflineRecord:
        """One offline purchase against ``card`` (§1.3): SELECT, INITIALIZE, DEBIT; the record is queued."""
        if card.card_number in self.blacklist:
            raise TapRefused("blacklisted")
        compound = stop is not None
        select = card.apdu(bytes.fromhex("00A4040008A000000632010105"))
        if select[-2:] != SW_OK:
            raise TapRefused("select")
        init = card.apdu(
            initialize_for_purchase_command(
                key_index=1, amount=amount, terminal_no=self.psam.terminal_no, compound=compound
            )
        )
        if init[-2:] != SW_OK:
            raise TapRefused(f"initialize {init[-2:].hex()}")
        info = parse_purchase_init_response(init[:-2])
        when = dt7(now)
        txn_type = 0x09 if compound else 0x06

        def inputs(serial: int) -> PurchaseInputs:
            return PurchaseInputs(
                amount=amount,
                terminal_no=self.psam.terminal_no,
                terminal_txn_serial=serial,
                transaction_time=when,
                txn_type=txn_type,
            )

        serial, mac1, sespk = self.psam.mac1(
            card.app_serial, info.pseudo_random, info.offline_counter, inputs
        )
        debit = card.apdu(
            debit_for_purchase_command(terminal_txn_serial=serial, transaction_time=when, mac1=mac1)
        )
        if debit[-2:] != SW_OK:
            raise TapRefused(f"debit {debit[-2:].hex()}")
        tac, mac2 = debit[:4], debit[4:8]
        if not verify_mac(purchase_mac2(sespk, amount), mac2):
            raise TapRefused("MAC2")
        record = OfflineRecord(
            kind=RecordKind.COMPOUND if compound else RecordKind.PURCHASE,
            terminal_serial=serial,
            app_serial=card.app_serial,
            issuer_id=card.issuer_id,
            card_counter=info.offline_counter,
            amount=amount,
            balance_before=info.balance,
            txn_type=txn_type,
            psam_terminal_no=self.psam.terminal_no,
            txn_time=when,
            tac=tac,
            key_version=info.key_version,
            blacklist_version=self.blacklist_version,
            line=self.line,
            stop=stop,
            entry_stop=entry_stop,
            entry_time=None,
        )
        self.queue[serial] = record
        self._encoded(record)
        return record

    def scan_qr(self, payload: bytes, amount: int, now: dt.datetime) -> OfflineRecord:
        """A QR ride: verified offline (card.qr), MACed with the reader's record key, queued."""
        if self.verifier is None:
            raise TapRefused("no parameters")
        try:
            ride = self.verifier.verify(payload, now, amount)
        except QRRejected as exc:
            raise TapRefused(exc.reason.value) from None
        self.psam.serial += 1
        generated = int(ride.generated_at.timestamp())
        record = OfflineRecord(
            kind=RecordKind.QR,
            terminal_serial=self.psam.serial,
            app_serial=qr_account(ride.card_number),
            card_counter=generated,
            amount=amount,
            txn_time=dt7(now),
            tac=bytes(4),
            blacklist_version=self.blacklist_version,
            line=self.line,
            qr_payload=payload,
            sam_no=self.psam.terminal_no[2:],
            terminal_node=b"\x00\x00\x00\x01",
            qr_time=int(now.timestamp()),
        )
        mac = record_mac(
            record_key(self.tmk), qr_mac_input(record, validity=self.qr_validity, generation_time=generated)
        )
        import msgspec

        record = msgspec.structs.replace(record, tac=mac)
        self.queue[record.terminal_serial] = record
        self._encoded(record)
        return record

    async def sync(self) -> None:
        """Parameters (platform keys, issuers) and the blacklist delta since the reader's version."""
        params = await self.link.request(Parameters(), ParametersResponse)
        if params.result != ResultCode.OK:  # an error answer carries no parameters: keep the old ones
            raise LinkError(params.result, params.detail or "parameters refused")
        keys = {
            k.key_id: ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), k.public_key)
            for k in params.keys
        }
        self.qr_validity = params.qr_validity or 60
        self.verifier = OfflineVerifier(keys, params.issuers, self._listed, self.qr_validity)
        await self.sync_blacklist()

    def _listed(self, card_number: str) -> bool:
        # Looked up at each scan, not bound to one set: a completed download replaces the set.
        return card_number in self.blacklist

    async def sync_blacklist(self, *, max_lists: int = 4) -> None:
        """Bring the blacklist up to the host's (§8, BLACKLIST): one list, in as many pages as it
        takes; a list that took several pages is followed by the delta since its version, since
        the head may have moved while it was paged (at most ``max_lists`` lists: a head that
        keeps moving is caught up with at the next sync). A refusal raises :class:`LinkError`
        with the reader's list and version as they were."""
        for _ in range(max_lists):
            if await self._download_list() <= 1:
                return

    async def _download_list(self) -> int:
        """Download one list, page by page, and apply it whole; the number of pages it took.

        Pages are gathered aside and applied only when the last has arrived: the reader's list and
        its version (which its records report, DF4C) change together or not at all, so a download
        that fails half-way never leaves a half-applied list that claims the new version."""
        since = self.blacklist_version
        request = Blacklist(since_version=since)
        added: set[str] = set()
        removed: set[str] = set()
        first: BlacklistResponse | None = None
        pages = 0
        while True:
            page = await self.link.request(request, BlacklistResponse)
            if page.result != ResultCode.OK:
                raise LinkError(page.result, page.detail or "blacklist refused")
            if page.version is None:
                raise LinkError(ResultCode.MISSING_FIELD, "blacklist answer without a version")
            if first is None:
                first = page
            elif (page.version, page.full) != (first.version, first.full):
                raise LinkError(ResultCode.BAD_FIELD_VALUE, "a page of another list")
            pages += 1
            added.update(page.added)
            removed.update(page.removed)
            if page.next_after is None:
                break
            if request.after is not None and int(page.next_after) <= int(request.after):
                # The key must move forward, or the download would never end.
                raise LinkError(ResultCode.BAD_FIELD_VALUE, "a continuation that does not advance")
            request = Blacklist(since_version=since, list_version=first.version, after=page.next_after)
        assert first is not None and first.version is not None
        if first.full:
            self.blacklist = added
        else:
            self.blacklist = (self.blacklist - removed) | added
        self.blacklist_version = first.version
        return pages

    def _encoded(self, record: OfflineRecord) -> bytes:
        # A record is encoded once, the first time it is sent, and re-sent as those bytes until
        # acknowledged: a reader has little CPU (and in a load test it shares the host's).
        # Keyed by serial but kept only for the same record object (a test may swap a queued record).
        cached = self._encoded_records.get(record.terminal_serial)
        if cached is not None and cached[0] is record:
            return cached[1]
        raw = encode(TLV(Tag.ITEM, encode_body(record)))
        self._encoded_records[record.terminal_serial] = (record, raw)
        return raw

    def _next_batch(self) -> list[OfflineRecord]:
        """The first queued records that fit one batch: at most ``batch_size`` (and the protocol's
        500), and as many as fit a 65,535-byte message (§1: the frame limit wins; ~228 QR records)."""
        room = MAX_FRAME_SIZE - self._batch_overhead()
        limit = min(self.batch_size, DEFAULT_MAX_BATCH_RECORDS)
        records: list[OfflineRecord] = []
        for record in self.queue.values():
            size = len(self._encoded(record))
            if len(records) >= limit or (records and size > room):
                break
            records.append(record)
            room -= size
        return records

    def _batch_overhead(self) -> int:
        """The bytes of a batch message besides its records: the header, the batch number and count,
        the MAC, and the body's length in its longest form (``82 xx xx``; an empty body's is 1 byte)."""
        if self._overhead is None:
            empty = seal(
                BatchUpload(batch_number=0, record_count=0),
                terminal_id=self.link.terminal_id,
                sequence=0,
                time=0,
                key=None,
            )
            self._overhead = len(empty) + 2
        return self._overhead

    async def upload(self) -> int:
        """Send every queued record in batches; a record leaves the queue only when an authentic
        answer to the batch it was sent in lists it (the link rejects any other answer)."""
        sent = 0
        while self.queue:
            records = self._next_batch()
            self.batch_number += 1
            head = BatchUpload(batch_number=self.batch_number, record_count=len(records))
            answer = await self.link.request(
                EncodedBody(
                    BatchUpload.TYPE, encode(encode_body(head)) + b"".join(self._encoded(r) for r in records)
                ),
                BatchResponse,
            )
            if answer.result != ResultCode.OK:
                raise LinkError(answer.result, answer.detail or "batch refused")
            batch = {r.terminal_serial for r in records}
            acknowledged = [o for o in answer.outcomes if o.terminal_serial in batch]
            if not acknowledged:  # re-sending the same batch would get the same answer for ever
                raise LinkError(ResultCode.BAD_FIELD_VALUE, "the answer lists none of the batch's records")
            for outcome in acknowledged:
                self.queue.pop(outcome.terminal_serial, None)
                self._encoded_records.pop(outcome.terminal_serial, None)
                name = RecordResult(outcome.result).name.lower()
                self.counts[name] = self.counts.get(name, 0) + 1
                self.results[outcome.terminal_serial] = (outcome.result, outcome.reason)
            sent += len(records)
        return sent


async def pause() -> None:
    await asyncio.sleep(0)


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
