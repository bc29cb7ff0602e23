"""uvicorn's httptools protocol, with each response leaving in one send.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body as a second write at ``http.response.body``: two ``send``
calls on the socket for every answer, each waking the client. On this project's hot paths (the
token endpoint, the home page) an answer is small and both messages come in the same event-loop
turn, so the second send is pure cost: with loopback TCP a send runs the receiver's network
stack and wakes it, and py-spy put uvicorn's send at 15 % of a worker's CPU. Here the writes of
one loop turn are joined and sent once at the end of the turn. Streaming answers still stream:
each later turn's chunks leave at the end of that turn.

Only the transport is wrapped; uvicorn's parsing, flow control and keep-alive are its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["OneSendPerTurn"]


class _JoinedWrites:
    """A transport whose writes of one loop turn leave in one ``write`` of the real one."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(p) for p in self._pending)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()  # what was written before close is sent, as with the real transport
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class OneSendPerTurn(HttpToolsProtocol):
    """``uvicorn.Config(http=OneSendPerTurn)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
