"""BER-TLV codec as used by EMV (EMV 4.x Book 3 Annex B, a subset of ISO/IEC 8825-1 / X.690 §8.1):
pure functions, no I/O. The frame layer of terminal TCP links is ``card.terminal.frame``.

Wire rules (EMV Book 3 Annex B1-B3):

* Tag, first byte: b8-b7 class, b6 = 1 for a constructed object, b5-b1 = 11111 means "more tag bytes
  follow"; each subsequent byte has b8 = 1 if another byte follows. Tags are kept as the integer
  of their raw bytes (``0x9F02``), so they round-trip exactly; at most :data:`MAX_TAG_BYTES` bytes.
* Length: short form ``00``-``7F``; long form ``81 xx`` or ``82 xx xx`` (up to 65535). ``80``
  (indefinite, X.690 §8.1.3.6) and ``83``-``FF`` are refused. Non-minimal long forms (``81 05``)
  are accepted, as BER allows; the encoder always writes the minimal form.
* ``00`` bytes before, between or after objects are padding and are skipped (Book 3 Annex B).
* The value of a constructed object (b6 set) is itself a sequence of TLV objects, decoded recursively
  up to ``max_depth`` levels.

Every malformed input raises :class:`TLVError` (a ``ValueError``) with a :class:`TLVErrorReason`.
Decoding indexes one ``bytes`` buffer by offset: constructed values are never copied, only leaf
values are sliced out. (Indexing ``bytes`` is faster in CPython than indexing a ``memoryview``; a
``memoryview``/``bytearray`` argument is copied once to ``bytes``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from typing import Final, NamedTuple

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEPTH_LIMIT",
    "MAX_LENGTH",
    "MAX_TAG_BYTES",
    "TLV",
    "Span",
    "TLVError",
    "TLVErrorReason",
    "decode",
    "decode_one",
    "encode",
    "find",
    "is_constructed",
    "spans",
]  # fmt: skip

MAX_TAG_BYTES: Final = 4
MAX_LENGTH: Final = 0xFFFF  # the largest length the 82 xx xx form carries
DEFAULT_MAX_DEPTH: Final = 16
DEPTH_LIMIT: Final = 64  # hard cap on max_depth, far below Python's recursion limit


class TLVErrorReason(StrEnum):
    TRUNCATED = "truncated"  # an object runs past the end of its buffer or enclosing template
    EMPTY = "empty"  # decode_one found no object
    TRAILING_DATA = "trailing_data"  # decode_one / decode_frame found bytes after the object / frame
    INDEFINITE_LENGTH = "indefinite_length"  # length byte 80
    LENGTH_FORM = "length_form"  # length bytes 83..FF: more than 2 length bytes
    LENGTH_EXCEEDS_MAX = "length_exceeds_max"  # over the configured (or 65535) maximum
    TAG_TOO_LONG = "tag_too_long"  # more than MAX_TAG_BYTES tag bytes
    TOO_DEEP = "too_deep"  # constructed objects nested deeper than max_depth
    INVALID_TAG = "invalid_tag"  # encoder: the integer is not a well-formed tag
    CONSTRUCTED_MISMATCH = "constructed_mismatch"  # encoder: value type disagrees with the tag's b6
    FRAME_TOO_LARGE = "frame_too_large"
    DECODER_FAILED = "decoder_failed"  # FrameDecoder used after a framing error


class TLVError(ValueError):
    """Malformed TLV or frame. ``offset`` is the byte position in the decoded buffer, if known."""

    def __init__(self, reason: TLVErrorReason, offset: int | None = None) -> None:
        where = "" if offset is None else f" at offset {offset}"
        super().__init__(f"{reason.value}{where}")
        self.reason = reason
        self.offset = offset


class TLV(NamedTuple):
    """One data object. ``value`` is ``bytes`` for a primitive tag, a tuple of children if constructed."""

    tag: int
    value: bytes | tuple[TLV, ...]

    @property
    def constructed(self) -> bool:
        return isinstance(self.value, tuple)

    def __repr__(self) -> str:
        value = self.value.hex().upper() if isinstance(self.value, bytes) else repr(self.value)
        return f"TLV(0x{self.tag:X}, {value})"


_new_tlv = tuple.__new__  # skips NamedTuple's Python-level __new__ on the decode hot path


def is_constructed(tag: int) -> bool:
    """Whether b6 of the tag's first byte is set (EMV Book 3 Annex B2)."""
    return bool((tag >> (8 * ((tag.bit_length() - 1) // 8))) & 0x20) if tag > 0 else False


# ---------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------


def _decode(buf: bytes, pos: int, end: int, depth_left: int, max_length: int) -> tuple[TLV, ...]:
    out: list[TLV] = []
    append = out.append
    while pos < end:
        first = buf[pos]
        if first == 0:  # '00' padding (EMV Book 3 Annex B)
            pos += 1
            continue
        start = pos
        pos += 1
        tag = first
        if first & 0x1F == 0x1F:  # subsequent tag bytes while b8 = 1 (Annex B1)
            while True:
                if pos >= end:
                    raise TLVError(TLVErrorReason.TRUNCATED, start)
                b = buf[pos]
                pos += 1
                tag = (tag << 8) | b
                if b < 0x80:
                    break
                if pos - start >= MAX_TAG_BYTES:
                    raise TLVError(TLVErrorReason.TAG_TOO_LONG, start)
        if pos >= end:
            raise TLVError(TLVErrorReason.TRUNCATED, start)
        length = buf[pos]
        pos += 1
        if length >= 0x80:  # long form (Annex B2; X.690 §8.1.3.5)
            if length == 0x81:
                if pos >= end:
                    raise TLVError(TLVErrorReason.TRUNCATED, start)
                length = buf[pos]
                pos += 1
            elif length == 0x82:
                if pos + 1 >= end:
                    raise TLVError(TLVErrorReason.TRUNCATED, start)
                length = (buf[pos] << 8) | buf[pos + 1]
                pos += 2
            elif length == 0x80:
                raise TLVError(TLVErrorReason.INDEFINITE_LENGTH, start)
            else:
                raise TLVError(TLVErrorReason.LENGTH_FORM, start)
        if length > max_length:
            raise TLVError(TLVErrorReason.LENGTH_EXCEEDS_MAX, start)
        value_end = pos + length
        if value_end > end:
            raise TLVError(TLVErrorReason.TRUNCATED, start)
        if first & 0x20:
            if depth_left <= 0:
                raise TLVError(TLVErrorReason.TOO_DEEP, start)
            children = _decode(buf, pos, value_end, depth_left - 1, max_length)
            append(_new_tlv(TLV, (tag, children)))
        else:
            append(_new_tlv(TLV, (tag, buf[pos:value_end])))
        pos = value_end
    return tuple(out)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if type(data) is bytes else bytes(data)


def decode(
    data: bytes | bytearray | memoryview, *, max_length: int = MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[TLV, ...]:
    """Decode a sequence of TLV objects (possibly empty). Raises :class:`TLVError` on any malformation."""
    if not 0 <= max_depth <= DEPTH_LIMIT:
        raise ValueError(f"max_depth must be within 0..{DEPTH_LIMIT}")
    buf = _as_bytes(data)
    return _decode(buf, 0, len(buf), max_depth, max_length)


def decode_one(
    data: bytes | bytearray | memoryview, *, max_length: int = MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH
) -> TLV:
    """Decode exactly one TLV object (surrounding ``00`` padding allowed)."""
    objects = decode(data, max_length=max_length, max_depth=max_depth)
    if not objects:
        raise TLVError(TLVErrorReason.EMPTY)
    if len(objects) > 1:
        raise TLVError(TLVErrorReason.TRAILING_DATA)
    return objects[0]


class Span(NamedTuple):
    """Where one object lies: ``buf[start:end]`` is the whole TLV, ``buf[value:end]`` its value."""

    tag: int
    start: int
    value: int
    end: int


def spans(data: bytes, start: int = 0, end: int | None = None) -> list[Span]:
    """The top-level objects of ``data[start:end]`` as offsets, without decoding their values.

    For a caller that needs the bytes of objects exactly as received (e.g. to store each record of
    a batch as sent, without encoding it again). Raises :class:`TLVError` as :func:`decode` does.
    """
    stop = len(data) if end is None else end
    out: list[Span] = []
    pos = start
    while pos < stop:
        if data[pos] == 0:
            pos += 1
            continue
        first = pos
        pos += 1
        tag = data[first]
        if tag & 0x1F == 0x1F:
            while True:
                if pos >= stop or pos - first >= MAX_TAG_BYTES:
                    raise TLVError(TLVErrorReason.TRUNCATED, first)
                b = data[pos]
                pos += 1
                tag = (tag << 8) | b
                if b < 0x80:
                    break
        if pos >= stop:
            raise TLVError(TLVErrorReason.TRUNCATED, first)
        length = data[pos]
        pos += 1
        if length == 0x81 and pos < stop:
            length = data[pos]
            pos += 1
        elif length == 0x82 and pos + 1 < stop:
            length = (data[pos] << 8) | data[pos + 1]
            pos += 2
        elif length >= 0x80:
            raise TLVError(TLVErrorReason.LENGTH_FORM, first)
        if pos + length > stop:
            raise TLVError(TLVErrorReason.TRUNCATED, first)
        out.append(Span(tag, first, pos, pos + length))
        pos += length
    return out


def find(objects: Iterable[TLV], tag: int) -> TLV | None:
    """First object with ``tag``, depth first through constructed templates."""
    for obj in objects:
        if obj.tag == tag:
            return obj
        if isinstance(obj.value, tuple):
            found = find(obj.value, tag)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _tag_bytes(tag: int) -> bytes:
    # Validate against Annex B1: single byte unless b5-b1 = 11111; then continuation bits b8.
    if tag <= 0 or tag.bit_length() > 8 * MAX_TAG_BYTES:
        raise TLVError(TLVErrorReason.INVALID_TAG)
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    multi = raw[0] & 0x1F == 0x1F
    if multi != (len(raw) > 1):
        raise TLVError(TLVErrorReason.INVALID_TAG)
    if multi and (any(b < 0x80 for b in raw[1:-1]) or raw[-1] >= 0x80):
        raise TLVError(TLVErrorReason.INVALID_TAG)
    return raw


def _length_bytes(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= MAX_LENGTH:
        return bytes((0x82, length >> 8, length & 0xFF))
    raise TLVError(TLVErrorReason.LENGTH_EXCEEDS_MAX)


def _encode_into(out: bytearray, obj: TLV, depth: int, max_depth: int) -> None:
    tag, value = obj
    raw_tag = _tag_bytes(tag)
    if raw_tag[0] & 0x20:
        if not isinstance(value, tuple):
            raise TLVError(TLVErrorReason.CONSTRUCTED_MISMATCH)
        if depth >= max_depth:
            raise TLVError(TLVErrorReason.TOO_DEEP)
        content = bytearray()
        for child in value:
            _encode_into(content, child, depth + 1, max_depth)
        out += raw_tag
        out += _length_bytes(len(content))
        out += content
    else:
        if not isinstance(value, bytes | bytearray):
            raise TLVError(TLVErrorReason.CONSTRUCTED_MISMATCH)
        out += raw_tag
        out += _length_bytes(len(value))
        out += value


def encode_encoded(tag: int, content: bytes) -> bytes:
    """A constructed object whose value (its children) is already encoded: ``content`` as is."""
    raw_tag = _tag_bytes(tag)
    if not raw_tag[0] & 0x20:
        raise TLVError(TLVErrorReason.CONSTRUCTED_MISMATCH)
    return raw_tag + _length_bytes(len(content)) + content


def encode(objects: TLV | Iterable[TLV], *, max_depth: int = DEFAULT_MAX_DEPTH) -> bytes:
    """Encode one object or a sequence of objects (minimal lengths, no padding)."""
    out = bytearray()
    for obj in (objects,) if isinstance(objects, TLV) else objects:
        _encode_into(out, obj, 0, max_depth)
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
