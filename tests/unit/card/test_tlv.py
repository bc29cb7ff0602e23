from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from card.terminal.frame import FrameDecoder, decode_frame, encode_frame
from card.terminal.tlv import (
    TLV,
    TLVError,
    TLVErrorReason,
    decode,
    decode_one,
    encode,
    find,
    is_constructed,
    spans,
)

R = TLVErrorReason

# EMV Book 1 style FCI returned by SELECT "1PAY.SYS.DDF01": 6F { 84, A5 { 88, 5F2D } }.
FCI = bytes.fromhex("6F1A840E315041592E5359532E4444463031A5088801025F2D02656E")


def reason_of(data: bytes, **kwargs: int) -> TLVErrorReason:
    with pytest.raises(TLVError) as excinfo:
        decode(data, **kwargs)
    return excinfo.value.reason


def test_emv_fci_example() -> None:
    objects = decode(FCI)
    assert objects == (
        TLV(
            0x6F,
            (
                TLV(0x84, b"1PAY.SYS.DDF01"),
                TLV(0xA5, (TLV(0x88, b"\x02"), TLV(0x5F2D, b"en"))),
            ),
        ),
    )
    assert encode(objects) == FCI
    assert find(objects, 0x5F2D) == TLV(0x5F2D, b"en")
    assert find(objects, 0x9F02) is None
    assert objects[0].constructed
    assert "0x5F2D" in repr(objects)


def test_field_55_style_multi_byte_tags() -> None:
    data = bytes.fromhex("9F02060000000001009F3704112233449F360200409F1007070001039A4002")
    objects = decode(data)
    assert [o.tag for o in objects] == [0x9F02, 0x9F37, 0x9F36, 0x9F10]
    assert objects[2].value == b"\x00\x40"
    assert encode(objects) == data


def test_three_byte_tag_and_is_constructed() -> None:
    assert decode(bytes.fromhex("DF810102AABB")) == (TLV(0xDF8101, b"\xaa\xbb"),)
    assert is_constructed(0x70)
    assert is_constructed(0xBF0C)
    assert not is_constructed(0x9F02)
    assert not is_constructed(0)


@pytest.mark.parametrize(
    ("length", "header"),
    [(0, "00"), (127, "7F"), (128, "8180"), (255, "81FF"), (256, "820100"), (65535, "82FFFF")],
)
def test_length_forms(length: int, header: str) -> None:
    encoded = encode(TLV(0x5A, bytes(length)))
    assert encoded[1 : 1 + len(header) // 2].hex().upper() == header
    assert decode(encoded) == (TLV(0x5A, bytes(length)),)


def test_non_minimal_long_form_is_accepted() -> None:
    assert decode(bytes.fromhex("5A8102AABB")) == (TLV(0x5A, b"\xaa\xbb"),)
    assert decode(bytes.fromhex("5A820002AABB")) == (TLV(0x5A, b"\xaa\xbb"),)


def test_zero_padding_is_skipped() -> None:
    data = bytes.fromhex("00 00 5A01AA 00 70 05 00 5F2001BB 00 00")
    assert decode(data) == (TLV(0x5A, b"\xaa"), TLV(0x70, (TLV(0x5F20, b"\xbb"),)))
    assert decode(b"\x00\x00") == ()
    assert decode(b"") == ()


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("5A", R.TRUNCATED),  # no length
        ("9F", R.TRUNCATED),  # tag continues past the end
        ("9F80", R.TRUNCATED),
        ("5A03AABB", R.TRUNCATED),  # value short
        ("5A81", R.TRUNCATED),
        ("5A8201", R.TRUNCATED),
        ("7003 5A05AA", R.TRUNCATED),  # child runs past its template although the buffer is long enough
        ("7003 5A02AAAA", R.TRUNCATED),
        ("5A80AA0000", R.INDEFINITE_LENGTH),
        ("5A83000001AA", R.LENGTH_FORM),
        ("5AFF", R.LENGTH_FORM),
        ("9F8080800100", R.TAG_TOO_LONG),
    ],
)
def test_malformed_inputs(hex_data: str, reason: TLVErrorReason) -> None:
    assert reason_of(bytes.fromhex(hex_data)) == reason


def test_configured_max_length() -> None:
    data = encode(TLV(0x5A, bytes(200)))
    assert reason_of(data, max_length=199) == R.LENGTH_EXCEEDS_MAX
    assert decode(data, max_length=200)


def _nested(depth: int) -> bytes:
    data = encode(TLV(0x5A, b"\x01"))
    for _ in range(depth):
        data = encode(TLV(0x70, decode(data)))  # re-encode with a correct length at each level
    return data


def test_max_depth() -> None:
    assert decode(_nested(5), max_depth=5)
    assert reason_of(_nested(6), max_depth=5) == R.TOO_DEEP
    with pytest.raises(TLVError) as excinfo:
        encode(decode(_nested(6), max_depth=6), max_depth=5)
    assert excinfo.value.reason == R.TOO_DEEP


def test_pathological_nesting_is_too_deep_not_recursion_error() -> None:
    # 16,000 correctly nested "70 82 xx xx" headers: as deep as a 2-byte length allows.
    data = b"\x5a\x00"
    for _ in range(16_000):
        data = b"\x70\x82" + len(data).to_bytes(2, "big") + data
    assert reason_of(data) == R.TOO_DEEP
    assert reason_of(data, max_depth=64) == R.TOO_DEEP
    with pytest.raises(ValueError, match="max_depth"):
        decode(data, max_depth=100)


def test_decode_one() -> None:
    assert decode_one(b"\x00" + FCI + b"\x00").tag == 0x6F
    with pytest.raises(TLVError) as excinfo:
        decode_one(b"\x00")
    assert excinfo.value.reason == R.EMPTY
    with pytest.raises(TLVError) as excinfo:
        decode_one(FCI + b"\x5a\x00")
    assert excinfo.value.reason == R.TRAILING_DATA


@pytest.mark.parametrize("tag", [0, -1, 0x1F, 0x9F, 0x5A01, 0x9F81, 0x9F0102, 0x9F80808001])
def test_encode_rejects_invalid_tags(tag: int) -> None:
    with pytest.raises(TLVError) as excinfo:
        encode(TLV(tag, b""))
    assert excinfo.value.reason == R.INVALID_TAG


def test_encode_rejects_type_mismatch_and_oversize() -> None:
    with pytest.raises(TLVError) as excinfo:
        encode(TLV(0x70, b"\x5a\x00"))
    assert excinfo.value.reason == R.CONSTRUCTED_MISMATCH
    with pytest.raises(TLVError) as excinfo:
        encode(TLV(0x5A, (TLV(0x5A, b""),)))
    assert excinfo.value.reason == R.CONSTRUCTED_MISMATCH
    with pytest.raises(TLVError) as excinfo:
        encode(TLV(0x5A, bytes(65536)))
    assert excinfo.value.reason == R.LENGTH_EXCEEDS_MAX


def test_memoryview_and_bytearray_inputs() -> None:
    assert decode(memoryview(FCI)) == decode(bytearray(FCI)) == decode(FCI)


# --- frames ------------------------------------------------------------------------------------------------


def test_frame_round_trip_and_errors() -> None:
    frame = encode_frame(decode(FCI))
    assert frame == len(FCI).to_bytes(2, "big") + FCI
    assert decode_frame(frame) == decode(FCI)
    for data, reason in [
        (frame[:1], R.TRUNCATED),
        (frame[:-1], R.TRUNCATED),
        (frame + b"\x00", R.TRAILING_DATA),
    ]:
        with pytest.raises(TLVError) as excinfo:
            decode_frame(data)
        assert excinfo.value.reason == reason
    with pytest.raises(TLVError) as excinfo:
        decode_frame(frame, max_frame_size=len(FCI) - 1)
    assert excinfo.value.reason == R.FRAME_TOO_LARGE
    with pytest.raises(TLVError) as excinfo:
        encode_frame(decode(FCI), max_frame_size=10)
    assert excinfo.value.reason == R.FRAME_TOO_LARGE


def test_frame_decoder_basics() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    frame = encode_frame(decode(FCI))
    assert decoder.feed(frame[:5]) == []
    assert decoder.pending == 5
    with pytest.raises(TLVError):
        decoder.finish()
    assert decoder.feed(frame[5:] + b"\x00\x00" + frame) == [FCI, b"", FCI]
    assert decoder.pending == 0
    decoder.finish()


def test_frame_decoder_refuses_oversize_frames_and_then_everything() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    with pytest.raises(TLVError) as excinfo:
        decoder.feed(b"\x00\x11")
    assert excinfo.value.reason == R.FRAME_TOO_LARGE
    with pytest.raises(TLVError) as excinfo:
        decoder.feed(b"\x00\x00")
    assert excinfo.value.reason == R.DECODER_FAILED
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=70_000)


# --- property tests ----------------------------------------------------------------------------------------


@st.composite
def tags(draw: st.DrawFn, constructed: bool) -> int:
    first = draw(st.integers(0, 3)) << 6 | (0x20 if constructed else 0)
    if draw(st.booleans()):
        first |= draw(st.integers(1 if first == 0 else 0, 30))
        return first
    tag = first | 0x1F
    for b in draw(st.lists(st.integers(0x80, 0xFF), max_size=2)):
        tag = tag << 8 | b
    return tag << 8 | draw(st.integers(0, 0x7F))


primitives = st.builds(TLV, tags(constructed=False), st.binary(max_size=300))
trees = st.recursive(
    primitives,
    lambda children: st.builds(
        lambda tag, kids: TLV(tag, tuple(kids)), tags(constructed=True), st.lists(children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.lists(trees, max_size=4)


@given(messages)
def test_round_trip_of_random_trees(objects: list[TLV]) -> None:
    encoded = encode(objects)
    assert decode(encoded) == tuple(objects)
    assert decode_frame(encode_frame(objects)) == tuple(objects)


@given(messages)
def test_spans_cut_each_top_level_object_exactly_as_encoded(objects: list[TLV]) -> None:
    encoded = encode(objects)
    found = spans(encoded)
    assert [x.tag for x in found] == [o.tag for o in objects]
    # Each span's bytes decode to that one object, and its value offset is where the value starts.
    for span, obj in zip(found, objects, strict=True):
        assert decode_one(encoded[span.start : span.end]) == obj
        assert encoded[span.start : span.end] == encode(obj)
        if isinstance(obj.value, bytes):
            assert encoded[span.value : span.end] == obj.value


def test_spans_refuse_truncated_and_indefinite_objects() -> None:
    with pytest.raises(TLVError):
        spans(bytes.fromhex("9F0205000000"))
    with pytest.raises(TLVError):
        spans(bytes.fromhex("E38000"))


def _decode_or_error(data: bytes, **kwargs: int) -> None:
    with contextlib.suppress(TLVError):
        decode(data, **kwargs)


@given(st.binary(max_size=600), st.integers(0, 300), st.integers(0, 20))
def test_random_bytes_only_decode_or_raise_tlverror(data: bytes, max_length: int, max_depth: int) -> None:
    _decode_or_error(data)
    _decode_or_error(data, max_length=max_length, max_depth=max_depth)


edit_ops = st.sampled_from(["set", "insert", "delete", "truncate"])
mutations = st.lists(
    st.tuples(edit_ops, st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


@given(messages, mutations)
def test_mutated_encodings_only_decode_or_raise_tlverror(
    objects: list[TLV], edits: list[tuple[str, int, int]]
) -> None:
    data = bytearray(encode(objects))
    for op, where, byte in edits:
        i = where % (len(data) + 1)
        if op == "set" and i < len(data):
            data[i] = byte
        elif op == "insert":
            data.insert(i, byte)
        elif op == "delete" and i < len(data):
            del data[i]
        elif op == "truncate":
            del data[i:]
    _decode_or_error(bytes(data))
    _decode_or_error(bytes(data), max_depth=2, max_length=50)


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    out.append(data[pos:])
    return out


@given(st.lists(messages, max_size=6), st.lists(st.integers(0, 64), max_size=40))
def test_incremental_feeding_matches_feeding_at_once(frames: list[list[TLV]], sizes: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames)
    at_once = FrameDecoder().feed(stream)
    decoder = FrameDecoder()
    incremental = [frame for chunk in _chunks(stream, sizes) for frame in decoder.feed(chunk)]
    assert incremental == at_once
    assert [decode(f) for f in incremental] == [tuple(f) for f in frames]
    assert decoder.pending == 0


@given(st.binary(max_size=800), st.lists(st.integers(0, 64), max_size=40), st.integers(0, 300))
def test_random_streams_only_yield_frames_or_raise_tlverror(
    stream: bytes, sizes: list[int], max_frame_size: int
) -> None:
    decoder = FrameDecoder(max_frame_size=max_frame_size)
    try:
        frames = [frame for chunk in _chunks(stream, sizes) for frame in decoder.feed(chunk)]
    except TLVError:
        return
    assert all(len(f) <= max_frame_size for f in frames)
    for frame in frames:
        _decode_or_error(frame)
