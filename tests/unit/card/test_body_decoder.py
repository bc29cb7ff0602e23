"""The one-pass body decoder (``decode_body_at``) agrees with the TLV decoder followed by ``decode_body``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from card.terminal.messages import BatchUpload, OfflineRecord, ProtocolError, RecordOutcome
from card.terminal.messages.batch import encode_outcomes
from card.terminal.messages.fields import decode_body, decode_body_at, encode_body
from card.terminal.spec import Tag
from card.terminal.tlv import TLV, TLVError, decode, encode

u32 = st.integers(0, 2**32 - 1)
records = st.builds(
    OfflineRecord,
    kind=st.integers(1, 4),
    terminal_serial=u32,
    app_serial=st.binary(min_size=10, max_size=10),
    issuer_id=st.none() | st.binary(min_size=8, max_size=8),
    card_counter=u32,
    amount=u32,
    balance_before=st.none() | u32,
    txn_type=st.none() | st.integers(0, 255),
    psam_terminal_no=st.none() | st.binary(min_size=6, max_size=6),
    txn_time=st.binary(min_size=7, max_size=7),
    tac=st.binary(min_size=4, max_size=4),
    line=st.none() | st.text("AB12-", min_size=1, max_size=8),
    stop=st.none() | st.integers(0, 65535),
)
batches = st.lists(records, max_size=5).map(
    lambda rs: BatchUpload(batch_number=7, record_count=len(rs), records=tuple(rs))
)


def _generic(data: bytes) -> BatchUpload | None:
    try:
        return decode_body(BatchUpload, decode(data, max_depth=2))
    except (TLVError, ProtocolError):
        return None


def _fused(data: bytes) -> BatchUpload | None:
    try:
        return decode_body_at(BatchUpload, data, 0, len(data), 1)
    except ProtocolError:
        return None


@given(batches)
def test_encoded_batches_decode_to_themselves(batch: BatchUpload) -> None:
    data = encode(encode_body(batch))
    assert decode_body_at(BatchUpload, data, 0, len(data), 1) == batch == _generic(data)


@given(batches, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3))
def test_mutated_batches_are_refused_or_read_alike(batch: BatchUpload, edits: list[tuple[int, int]]) -> None:
    data = bytearray(encode(encode_body(batch)))
    for where, byte in edits:
        if data:
            data[where % len(data)] = byte
    assert _fused(bytes(data)) == _generic(bytes(data))


def test_a_nested_template_inside_a_record_is_refused() -> None:
    item = OfflineRecord(
        kind=1,
        terminal_serial=1,
        card_counter=0,
        amount=1,
        app_serial=bytes(10),
        txn_time=bytes(7),
        tac=bytes(4),
    )
    record = encode(encode_body(item))
    nested = bytes.fromhex("E3") + bytes((len(record) + 2,)) + record + bytes.fromhex("E300")
    with pytest.raises(ProtocolError):
        decode_body_at(BatchUpload, nested, 0, len(nested), 1)


@given(st.lists(st.tuples(u32, st.integers(0, 255), st.integers(0, 65535)), max_size=20))
def test_outcomes_encoded_by_concatenation_are_the_encoder_s_bytes(
    outcomes: list[tuple[int, int, int]],
) -> None:
    expected = b"".join(
        encode(TLV(Tag.ITEM, encode_body(RecordOutcome(terminal_serial=s, result=r, reason=why))))
        for s, r, why in outcomes
    )
    assert encode_outcomes(outcomes) == expected
