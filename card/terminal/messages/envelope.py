"""A message on the wire: ``E1`` header, ``E2`` body, ``DF7F`` MAC (docs/terminal-protocol.md §2).

``seal`` builds the bytes of one message (without the 2-byte frame length of
``card.terminal.frame``); ``open_message`` parses one, checking the structure and the header but
not the MAC (the key depends on the header); ``Envelope.body`` decodes the body as the class its
message type names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

from card.terminal.frame import MAX_FRAME_SIZE, frame
from card.terminal.messages.fields import ProtocolError, decode_body_at, encode_body
from card.terminal.messages.security import message_mac, verify_message_mac
from card.terminal.messages.types import MESSAGE_TYPES, Message
from card.terminal.spec import MAC_SIZE, PROTOCOL_VERSION, UNAUTHENTICATED_MAC, MessageType, ResultCode, Tag
from card.terminal.tlv import TLV, TLVError, decode, encode, encode_encoded, spans

__all__ = ["EncodedBody", "Envelope", "Header", "open_message", "seal", "seal_frame"]

_MAC_PREFIX: Final = bytes((Tag.MAC >> 8, Tag.MAC & 0xFF, MAC_SIZE))
_MAC_TLV_SIZE: Final = len(_MAC_PREFIX) + MAC_SIZE
_MAX_DEPTH: Final = 3  # message → E2 body → E3/E4/E5 items


@dataclass(frozen=True, slots=True)
class Header:
    message_type: int
    terminal_id: str
    sequence: int
    time: int
    version: int = PROTOCOL_VERSION


def _header_tlv(header: Header) -> TLV:
    if not 1 <= len(header.terminal_id) <= 16:
        raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, "terminal_id")
    return TLV(
        Tag.HEADER,
        (
            TLV(Tag.VERSION, bytes((header.version,))),
            TLV(Tag.MESSAGE_TYPE, bytes((header.message_type,))),
            TLV(Tag.TERMINAL_ID, header.terminal_id.encode("ascii")),
            TLV(Tag.SEQUENCE, header.sequence.to_bytes(4, "big")),
            TLV(Tag.TIME, header.time.to_bytes(4, "big")),
        ),
    )


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """A body whose data objects are already encoded (``content``: their bytes, in order): a
    terminal that encodes each record once, when it is made, sends its batches as these."""

    TYPE: MessageType
    content: bytes


def seal(
    body: Message | EncodedBody, *, terminal_id: str, sequence: int, time: int, key: bytes | None
) -> bytes:
    """One message; ``key`` None puts the all-zero MAC of unauthenticated error answers."""
    header = Header(int(body.TYPE), terminal_id, sequence, time)
    if isinstance(body, EncodedBody):
        signed = encode(_header_tlv(header)) + encode_encoded(Tag.BODY, body.content)
    else:
        signed = encode((_header_tlv(header), TLV(Tag.BODY, encode_body(body))))
    mac = UNAUTHENTICATED_MAC if key is None else message_mac(key, signed)
    return signed + _MAC_PREFIX + mac


def seal_frame(
    body: Message | EncodedBody, *, terminal_id: str, sequence: int, time: int, key: bytes | None
) -> bytes:
    message = seal(body, terminal_id=terminal_id, sequence=sequence, time=time, key=key)
    if len(message) > MAX_FRAME_SIZE:
        raise ProtocolError(ResultCode.BATCH_TOO_LARGE, "message over 65535 bytes")
    return frame(message)


M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class Envelope:
    header: Header
    signed: bytes  # the bytes the MAC covers
    mac: bytes
    body_start: int  # the body's data objects are signed[body_start:body_end]
    body_end: int

    def verify(self, key: bytes) -> bool:
        return verify_message_mac(key, self.signed, self.mac)

    @property
    def unauthenticated(self) -> bool:
        return self.mac == UNAUTHENTICATED_MAC

    @property
    def body_objects(self) -> tuple[TLV, ...]:
        """The body's data objects as TLV (the typed body is :meth:`body`)."""
        try:
            return decode(self.signed[self.body_start : self.body_end], max_depth=_MAX_DEPTH - 1)
        except TLVError as exc:
            raise ProtocolError(ResultCode.MALFORMED_TLV, exc.reason.value) from None

    def body(self) -> Message:
        """The body as the class of the header's message type (decoded here, in one pass)."""
        cls = MESSAGE_TYPES.get(self.header.message_type)
        if cls is None:
            raise ProtocolError(ResultCode.UNKNOWN_MESSAGE_TYPE, f"{self.header.message_type:02X}")
        return decode_body_at(cls, self.signed, self.body_start, self.body_end, _MAX_DEPTH - 2)

    def expect(self, cls: type[M]) -> M:
        """The body, which must be a ``cls`` (a terminal waiting for one answer)."""
        if self.header.message_type != cls.TYPE:
            raise ProtocolError(ResultCode.UNKNOWN_MESSAGE_TYPE, f"expected {cls.TYPE.name}")
        return decode_body_at(cls, self.signed, self.body_start, self.body_end, _MAX_DEPTH - 2)


def _header(objects: tuple[TLV, ...] | bytes) -> Header:
    if not isinstance(objects, tuple):
        raise ProtocolError(ResultCode.MALFORMED_TLV, "header is not a template")
    fields: dict[int, bytes] = {}
    for obj in objects:
        if not isinstance(obj.value, bytes):
            raise ProtocolError(ResultCode.MALFORMED_TLV, "header field is constructed")
        if obj.tag not in (Tag.VERSION, Tag.MESSAGE_TYPE, Tag.TERMINAL_ID, Tag.SEQUENCE, Tag.TIME):
            raise ProtocolError(ResultCode.UNKNOWN_TAG, f"{obj.tag:X}")
        if obj.tag in fields:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "header field twice")
        fields[obj.tag] = obj.value
    for tag, size in ((Tag.VERSION, 1), (Tag.MESSAGE_TYPE, 1), (Tag.SEQUENCE, 4), (Tag.TIME, 4)):
        if tag not in fields:
            raise ProtocolError(ResultCode.MISSING_FIELD, Tag(tag).name.lower())
        if len(fields[tag]) != size:
            raise ProtocolError(ResultCode.BAD_FIELD_LENGTH, Tag(tag).name.lower())
    terminal_id = fields.get(Tag.TERMINAL_ID)
    if terminal_id is None:
        raise ProtocolError(ResultCode.MISSING_FIELD, "terminal_id")
    if not 1 <= len(terminal_id) <= 16 or not all(c in _ID_BYTES for c in terminal_id):
        raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "terminal_id")
    version = fields[Tag.VERSION][0]
    if version != PROTOCOL_VERSION:
        raise ProtocolError(ResultCode.UNSUPPORTED_VERSION, str(version))
    return Header(
        message_type=fields[Tag.MESSAGE_TYPE][0],
        terminal_id=terminal_id.decode("ascii"),
        sequence=int.from_bytes(fields[Tag.SEQUENCE], "big"),
        time=int.from_bytes(fields[Tag.TIME], "big"),
        version=version,
    )


_ID_BYTES: Final = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-")


def open_message(message: bytes) -> Envelope:
    """Parse one message (no frame length). Raises :class:`ProtocolError`; the MAC is not checked."""
    if len(message) < _MAC_TLV_SIZE or message[-_MAC_TLV_SIZE:-MAC_SIZE] != _MAC_PREFIX:
        raise ProtocolError(ResultCode.MALFORMED_TLV, "the message does not end with the MAC")
    signed = bytes(message[:-_MAC_TLV_SIZE])
    # Only the header is decoded here; the body's structure is checked as it is decoded into its
    # class (``Envelope.body``), once the MAC is known to be good.
    try:
        top = spans(signed)
        if len(top) != 2 or top[0].tag != Tag.HEADER or top[1].tag != Tag.BODY:
            raise ProtocolError(ResultCode.MALFORMED_TLV, "expected header, body, MAC")
        head, body = top
        header = _header(decode(signed[head.value : head.end], max_depth=0))
    except TLVError as exc:
        raise ProtocolError(ResultCode.MALFORMED_TLV, exc.reason.value) from None
    if header.message_type not in MessageType._value2member_map_:
        raise ProtocolError(ResultCode.UNKNOWN_MESSAGE_TYPE, f"{header.message_type:02X}")
    return Envelope(header, signed, bytes(message[-MAC_SIZE:]), body.value, body.end)
