"""The frame layer of terminal TCP links: ``length(2, big-endian) || TLV message``
(docs/terminal-protocol.md §2). The TLV codec below it is ``card.terminal.tlv``.

Pure functions and one incremental splitter for a byte stream; no I/O. A frame error is a
:class:`~card.terminal.tlv.TLVError` like any other malformation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from card.terminal.tlv import DEFAULT_MAX_DEPTH, MAX_LENGTH, TLV, TLVError, TLVErrorReason, decode, encode

__all__ = ["FRAME_HEADER_SIZE", "MAX_FRAME_SIZE", "FrameDecoder", "decode_frame", "encode_frame", "frame"]

FRAME_HEADER_SIZE: Final = 2
MAX_FRAME_SIZE: Final = 0xFFFF  # the largest message a 2-byte frame length carries


def frame(message: bytes) -> bytes:
    """``message`` (already encoded) with its length header; over 65535 bytes → FRAME_TOO_LARGE."""
    if len(message) > MAX_FRAME_SIZE:
        raise TLVError(TLVErrorReason.FRAME_TOO_LARGE)
    return len(message).to_bytes(FRAME_HEADER_SIZE, "big") + message


def encode_frame(objects: TLV | Iterable[TLV], *, max_frame_size: int = MAX_FRAME_SIZE) -> bytes:
    message = encode(objects)
    if len(message) > max_frame_size:
        raise TLVError(TLVErrorReason.FRAME_TOO_LARGE)
    return frame(message)


def decode_frame(
    data: bytes | bytearray | memoryview,
    *,
    max_frame_size: int = MAX_FRAME_SIZE,
    max_length: int = MAX_LENGTH,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[TLV, ...]:
    """Decode exactly one complete frame (header and message, nothing after it)."""
    buf = data if type(data) is bytes else bytes(data)
    if len(buf) < FRAME_HEADER_SIZE:
        raise TLVError(TLVErrorReason.TRUNCATED, 0)
    size = (buf[0] << 8) | buf[1]
    if size > max_frame_size:
        raise TLVError(TLVErrorReason.FRAME_TOO_LARGE, 0)
    end = FRAME_HEADER_SIZE + size
    if len(buf) < end:
        raise TLVError(TLVErrorReason.TRUNCATED, 0)
    if len(buf) > end:
        raise TLVError(TLVErrorReason.TRAILING_DATA, end)
    try:
        return decode(buf[FRAME_HEADER_SIZE:], max_length=max_length, max_depth=max_depth)
    except TLVError as exc:  # the offset within the frame, not within its message
        raise TLVError(exc.reason, None if exc.offset is None else exc.offset + FRAME_HEADER_SIZE) from None


class FrameDecoder:
    """Incremental frame splitter for a byte stream (e.g. a TCP connection).

    :meth:`feed` returns the messages (without the 2-byte header) completed by the new bytes; decode
    each with :func:`decode`. A malformed message does not desynchronise the stream, but a frame over
    ``max_frame_size`` does: the decoder then refuses all further input (close the connection).
    """

    __slots__ = ("_buf", "_failed", "max_frame_size")

    def __init__(self, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        if not 0 <= max_frame_size <= MAX_FRAME_SIZE:
            raise ValueError("max_frame_size must be within 0..65535")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._failed = False

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self._failed:
            raise TLVError(TLVErrorReason.DECODER_FAILED)
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        available = len(buf)
        with memoryview(buf) as view:  # slices of the view do not copy the buffer
            while available - pos >= FRAME_HEADER_SIZE:
                size = (buf[pos] << 8) | buf[pos + 1]
                if size > self.max_frame_size:
                    self._failed = True
                    raise TLVError(TLVErrorReason.FRAME_TOO_LARGE)
                end = pos + FRAME_HEADER_SIZE + size
                if end > available:
                    break
                frames.append(bytes(view[pos + FRAME_HEADER_SIZE : end]))
                pos = end
        if pos:
            del buf[:pos]  # allowed only once the memoryview is released
        return frames

    def finish(self) -> None:
        """Call at end of stream: raises ``TLVError(truncated)`` if a partial frame is buffered."""
        if self._buf:
            raise TLVError(TLVErrorReason.TRUNCATED)
