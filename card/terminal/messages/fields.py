"""Declarative mapping between typed message bodies and BER-TLV data objects.

A body class is a frozen ``msgspec.Struct`` with ``FIELDS``: one :class:`Field` per attribute,
naming its tag, its kind and its length rule. :func:`encode_body` and :func:`decode_body` are the
one encoder and the one decoder for every message and record; every malformation is a
:class:`ProtocolError` carrying the :class:`~card.terminal.spec.ResultCode` the host answers with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Final, TypeVar

import msgspec

from card.terminal.spec import ResultCode
from card.terminal.tlv import TLV

__all__ = ["Body", "Field", "Kind", "ProtocolError", "decode_body", "decode_body_at", "encode_body"]

_TEXT: Final = re.compile(rb"[\x20-\x7e]*")
_DIGITS: Final = re.compile(rb"[0-9]+")
_ID: Final = re.compile(rb"[0-9A-Z-]+")


class ProtocolError(Exception):
    """A message the host (or a terminal) refuses; ``code`` is what goes back on the wire."""

    def __init__(self, code: ResultCode, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code
        self.detail = detail[:64]


class Kind(Enum):
    UINT = "uint"  # big-endian unsigned, exactly ``size`` bytes
    BYTES = "bytes"  # exactly ``size`` bytes (or ``low..high`` when size is 0)
    TEXT = "text"  # printable ASCII, ``low..high`` bytes
    DIGITS = "digits"  # ASCII decimal digits, ``low..high`` bytes
    IDENT = "ident"  # ASCII [0-9A-Z-], ``low..high`` bytes
    ITEMS = "items"  # repeated ``E3`` templates, each decoded as ``item``


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    tag: int
    kind: Kind
    size: int = 0
    low: int = 0
    high: int = 0
    optional: bool = False
    repeated: bool = False  # a primitive tag that may occur 0..n times (a tuple attribute)
    item: type[Body] | None = None
    max_items: int = 0  # ITEMS: 0 = unlimited (limits are enforced by the host)


class Body(msgspec.Struct, frozen=True, kw_only=True):
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    _by_tag: ClassVar[dict[int, Field]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_tag = {f.tag: f for f in cls.FIELDS}


B = TypeVar("B", bound=Body)


def _encode_value(field: Field, value: Any) -> bytes:
    kind = field.kind
    if kind is Kind.UINT:
        if type(value) is not int and not isinstance(value, int):
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, field.name)
        try:
            return int(value).to_bytes(field.size, "big")
        except OverflowError:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, field.name) from None
    raw = value.encode("ascii") if isinstance(value, str) else bytes(value)
    _check_length(field, raw)
    return raw


def _check_length(field: Field, raw: bytes) -> None:
    if field.size:
        if len(raw) != field.size:
            raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)
    elif not field.low <= len(raw) <= field.high:
        raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)


def _decode_value(field: Field, raw: bytes) -> Any:
    kind = field.kind
    if kind is Kind.UINT:
        if len(raw) != field.size:
            raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)
        return int.from_bytes(raw, "big")
    _check_length(field, raw)
    if kind is Kind.BYTES:
        return raw
    pattern = _TEXT if kind is Kind.TEXT else _DIGITS if kind is Kind.DIGITS else _ID
    if pattern.fullmatch(raw) is None:
        raise ProtocolError(ResultCode.BAD_FIELD_VALUE, field.name)
    return raw.decode("ascii")


def encode_body(body: Body) -> tuple[TLV, ...]:
    """The data objects of ``body`` in ``FIELDS`` order (the order the specification lists)."""
    out: list[TLV] = []
    for field in body.FIELDS:
        value = getattr(body, field.name)
        if field.kind is Kind.ITEMS:
            out.extend(TLV(field.tag, encode_body(item)) for item in value)
        elif field.repeated:
            out.extend(TLV(field.tag, _encode_value(field, v)) for v in value)
        elif value is None:
            if not field.optional:
                raise ProtocolError(ResultCode.MISSING_FIELD, field.name)
        else:
            out.append(TLV(field.tag, _encode_value(field, value)))
    return tuple(out)


# Per class, per tag: (field, plain) where ``plain`` is the fixed size of a UINT (> 0), of a fixed
# BYTES field (< 0, negated), or 0 for everything that goes through ``_decode_value``.
_PLANS: dict[type[Body], dict[int, tuple[Field, int]]] = {}


def _plan(cls: type[Body]) -> dict[int, tuple[Field, int]]:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = {}
        for f in cls.FIELDS:
            plain = 0
            if not f.repeated and f.kind is Kind.UINT:
                plain = f.size
            elif not f.repeated and f.kind is Kind.BYTES and f.size:
                plain = -f.size
            plan[f.tag] = (f, plain)
        _PLANS[cls] = plan
    return plan


_LISTED: dict[type[Body], tuple[str, ...]] = {}


def _listed(cls: type[Body]) -> tuple[str, ...]:
    names = _LISTED.get(cls)
    if names is None:
        names = _LISTED[cls] = tuple(f.name for f in cls.FIELDS if f.kind is Kind.ITEMS or f.repeated)
    return names


def decode_body(cls: type[B], objects: tuple[TLV, ...]) -> B:
    """Build ``cls`` from its data objects: unknown, repeated-once, missing or malformed → error."""
    plan = _plan(cls)
    values: dict[str, Any] = {}
    from_bytes = int.from_bytes
    for tag, value in objects:
        entry = plan.get(tag)
        if entry is None:
            raise ProtocolError(ResultCode.UNKNOWN_TAG, f"{tag:X}")
        field, plain = entry
        if plain:  # the hot path: fixed-size integers and byte strings
            if type(value) is not bytes:
                raise ProtocolError(ResultCode.MALFORMED_TLV, f"{tag:X} is constructed")
            if plain > 0:
                if len(value) != plain:
                    raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)
                decoded: Any = from_bytes(value, "big")
            else:
                if len(value) != -plain:
                    raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)
                decoded = value
            if field.name in values:
                raise ProtocolError(ResultCode.BAD_FIELD_VALUE, f"{field.name} twice")
            values[field.name] = decoded
            continue
        if field.kind is Kind.ITEMS:
            if not isinstance(value, tuple):
                raise ProtocolError(ResultCode.MALFORMED_TLV, "item")
            assert field.item is not None
            items = values.setdefault(field.name, [])
            if field.max_items and len(items) >= field.max_items:
                raise ProtocolError(ResultCode.BATCH_TOO_LARGE, field.name)
            items.append(decode_body(field.item, value))
            continue
        if not isinstance(value, bytes):
            raise ProtocolError(ResultCode.MALFORMED_TLV, f"{tag:X} is constructed")
        decoded = _decode_value(field, value)
        if field.repeated:
            values.setdefault(field.name, []).append(decoded)
        elif field.name in values:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, f"{field.name} twice")
        else:
            values[field.name] = decoded
    return _build(cls, values)


def _build(cls: type[B], values: dict[str, Any]) -> B:
    """The body from its decoded values: absent optional fields None, absent lists empty."""
    if len(values) != len(cls.FIELDS):
        for field in cls.FIELDS:
            if field.name in values:
                continue
            if field.kind is Kind.ITEMS or field.repeated:
                values[field.name] = ()
            elif not field.optional:
                raise ProtocolError(ResultCode.MISSING_FIELD, field.name)
            else:
                values[field.name] = None
    for name in _listed(cls):
        values[name] = tuple(values[name])
    try:
        return cls(**values)
    except (TypeError, msgspec.ValidationError) as exc:  # pragma: no cover - FIELDS and the class disagree
        raise ProtocolError(ResultCode.INTERNAL_ERROR, str(exc)) from None


def decode_body_at(cls: type[B], buf: bytes, pos: int, end: int, depth: int = 2) -> B:
    """``cls`` straight from the BER-TLV bytes ``buf[pos:end]`` (its data objects): the TLV layer and
    :func:`decode_body` fused into one pass, so no TLV object is built for a leaf. A batch of 500
    records is 10,000 leaves, decoded once each by the host. Same rules and errors as
    ``decode(...)`` then :func:`decode_body`; ``depth`` bounds the nesting of ITEMS templates."""
    plan = _plan(cls)
    values: dict[str, Any] = {}
    from_bytes = int.from_bytes
    while pos < end:
        first = buf[pos]
        if first == 0:  # '00' padding between objects (EMV Book 3 Annex B)
            pos += 1
            continue
        pos += 1
        tag = first
        if first & 0x1F == 0x1F:
            for _ in range(3):
                if pos >= end:
                    raise ProtocolError(ResultCode.MALFORMED_TLV, "truncated")
                b = buf[pos]
                pos += 1
                tag = (tag << 8) | b
                if b < 0x80:
                    break
            else:
                raise ProtocolError(ResultCode.MALFORMED_TLV, "tag_too_long")
        if pos >= end:
            raise ProtocolError(ResultCode.MALFORMED_TLV, "truncated")
        length = buf[pos]
        pos += 1
        if length >= 0x80:
            if length == 0x81 and pos < end:
                length = buf[pos]
                pos += 1
            elif length == 0x82 and pos + 1 < end:
                length = (buf[pos] << 8) | buf[pos + 1]
                pos += 2
            else:
                raise ProtocolError(ResultCode.MALFORMED_TLV, "length_form")
        value_end = pos + length
        if value_end > end:
            raise ProtocolError(ResultCode.MALFORMED_TLV, "truncated")
        entry = plan.get(tag)
        if entry is None:
            raise ProtocolError(ResultCode.UNKNOWN_TAG, f"{tag:X}")
        field, plain = entry
        if first & 0x20:  # a template: only an ITEMS field is one
            if field.kind is not Kind.ITEMS:
                raise ProtocolError(ResultCode.MALFORMED_TLV, f"{tag:X} is constructed")
            if depth <= 0:
                raise ProtocolError(ResultCode.MALFORMED_TLV, "too_deep")
            assert field.item is not None
            items = values.setdefault(field.name, [])
            if field.max_items and len(items) >= field.max_items:
                raise ProtocolError(ResultCode.BATCH_TOO_LARGE, field.name)
            items.append(decode_body_at(field.item, buf, pos, value_end, depth - 1))
        elif field.kind is Kind.ITEMS:
            raise ProtocolError(ResultCode.MALFORMED_TLV, "item")
        elif plain:  # fixed-size integers and byte strings
            if value_end - pos != abs(plain):
                raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, field.name)
            decoded: Any = from_bytes(buf[pos:value_end], "big") if plain > 0 else buf[pos:value_end]
            if field.name in values:
                raise ProtocolError(ResultCode.BAD_FIELD_VALUE, f"{field.name} twice")
            values[field.name] = decoded
        else:
            decoded = _decode_value(field, buf[pos:value_end])
            if field.repeated:
                values.setdefault(field.name, []).append(decoded)
            elif field.name in values:
                raise ProtocolError(ResultCode.BAD_FIELD_VALUE, f"{field.name} twice")
            else:
                values[field.name] = decoded
        pos = value_end
    return _build(cls, values)


def u8(name: str, tag: int, **kw: Any) -> Field:
    return Field(name, tag, Kind.UINT, size=1, **kw)


def u16(name: str, tag: int, **kw: Any) -> Field:
    return Field(name, tag, Kind.UINT, size=2, **kw)


def u32(name: str, tag: int, **kw: Any) -> Field:
    return Field(name, tag, Kind.UINT, size=4, **kw)


def u64(name: str, tag: int, **kw: Any) -> Field:
    return Field(name, tag, Kind.UINT, size=8, **kw)


def fixed(name: str, tag: int, size: int, **kw: Any) -> Field:
    return Field(name, tag, Kind.BYTES, size=size, **kw)


def text(name: str, tag: int, low: int, high: int, kind: Kind = Kind.TEXT, **kw: Any) -> Field:
    return Field(name, tag, kind, low=low, high=high, **kw)
