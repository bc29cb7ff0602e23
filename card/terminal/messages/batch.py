"""Batch upload bodies: the offline records a reader stores and forwards, and the host's per-record outcomes
(docs/terminal-protocol.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from card.terminal.messages.base import DETAIL, RESULT, Message, Response
from card.terminal.messages.fields import Body, Field, Kind, fixed, text, u8, u16, u32
from card.terminal.spec import DEFAULT_MAX_BATCH_RECORDS, MessageType, Tag
from card.terminal.tlv import TLV, encode, encode_encoded

__all__ = ["BatchResponse", "BatchUpload", "OfflineRecord", "RecordOutcome", "encode_outcomes"]

# --- offline records -------------------------------------------------------------------------------------


class OfflineRecord(Body, frozen=True, kw_only=True):
    """One offline transaction; which optional fields are required depends on ``kind`` (spec §5)."""

    FIELDS = (
        u8("kind", Tag.RECORD_KIND),
        u32("terminal_serial", Tag.TERMINAL_SERIAL),
        fixed("app_serial", Tag.APP_SERIAL, 10),
        fixed("issuer_id", Tag.ISSUER_ID, 8, optional=True),
        u32("card_counter", Tag.CARD_COUNTER),
        u32("amount", Tag.AMOUNT),
        u32("balance_before", Tag.BALANCE_BEFORE, optional=True),
        u8("txn_type", Tag.TXN_TYPE, optional=True),
        fixed("psam_terminal_no", Tag.PSAM_TERMINAL_NO, 6, optional=True),
        fixed("txn_time", Tag.TXN_TIME, 7),
        fixed("tac", Tag.TAC, 4),
        u8("key_version", Tag.KEY_VERSION, optional=True),
        u32("blacklist_version", Tag.TAP_BLACKLIST_VERSION),
        text("line", Tag.LINE, 1, 16, kind=Kind.IDENT, optional=True),
        u16("stop", Tag.STOP, optional=True),
        u16("entry_stop", Tag.ENTRY_STOP, optional=True),
        fixed("entry_time", Tag.ENTRY_TIME, 7, optional=True),
        Field("qr_payload", Tag.QR_PAYLOAD, Kind.BYTES, low=1, high=512, optional=True),
        fixed("sam_no", Tag.SAM_NO, 4, optional=True),
        fixed("terminal_node", Tag.TERMINAL_NODE, 4, optional=True),
        u32("qr_time", Tag.QR_TIME, optional=True),
    )
    kind: int
    terminal_serial: int
    app_serial: bytes
    issuer_id: bytes | None = None
    card_counter: int
    amount: int
    balance_before: int | None = None
    txn_type: int | None = None
    psam_terminal_no: bytes | None = None
    txn_time: bytes
    tac: bytes
    key_version: int | None = None
    blacklist_version: int = 0
    line: str | None = None
    stop: int | None = None
    entry_stop: int | None = None
    entry_time: bytes | None = None
    qr_payload: bytes | None = None
    sam_no: bytes | None = None
    terminal_node: bytes | None = None
    qr_time: int | None = None


class RecordOutcome(Body, frozen=True, kw_only=True):
    FIELDS = (
        u32("terminal_serial", Tag.TERMINAL_SERIAL),
        u8("result", Tag.RECORD_RESULT),
        u16("reason", Tag.RECORD_REASON),
    )
    terminal_serial: int
    result: int
    reason: int = 0


class BatchUpload(Message, frozen=True, kw_only=True):
    TYPE = MessageType.BATCH_UPLOAD
    FIELDS = (
        u32("batch_number", Tag.BATCH_NUMBER),
        u16("record_count", Tag.RECORD_COUNT),
        Field("records", Tag.ITEM, Kind.ITEMS, item=OfflineRecord, max_items=DEFAULT_MAX_BATCH_RECORDS),
    )
    batch_number: int
    record_count: int
    records: tuple[OfflineRecord, ...] = ()


class BatchResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.BATCH_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        u32("batch_number", Tag.BATCH_NUMBER, optional=True),
        u16("record_count", Tag.RECORD_COUNT, optional=True),
        Field("outcomes", Tag.ITEM, Kind.ITEMS, item=RecordOutcome),
    )
    batch_number: int | None = None
    record_count: int | None = None
    outcomes: tuple[RecordOutcome, ...] = ()


_SERIAL_PREFIX: Final = encode(TLV(Tag.TERMINAL_SERIAL, bytes(4)))[:-4]
_OUTCOME_TAILS: dict[tuple[int, int], bytes] = {}


def encode_outcomes(outcomes: Iterable[tuple[int, int, int]]) -> bytes:
    """``(terminal serial, result, reason)`` as the ``E3`` items of a :class:`BatchResponse`, the
    bytes ``encode_body`` gives for each :class:`RecordOutcome`, built by concatenation: the host
    answers every record of every batch (the result and reason part is the same for most)."""
    out = []
    for serial, result, reason in outcomes:
        tail = _OUTCOME_TAILS.get((result, reason))
        if tail is None:
            tail = encode(
                (TLV(Tag.RECORD_RESULT, bytes((result,))), TLV(Tag.RECORD_REASON, reason.to_bytes(2, "big")))
            )
            _OUTCOME_TAILS[(result, reason)] = tail
        out.append(encode_encoded(Tag.ITEM, _SERIAL_PREFIX + serial.to_bytes(4, "big") + tail))
    return b"".join(out)
