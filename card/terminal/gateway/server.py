"""The terminal gateway: an asyncio TCP server speaking the frame protocol (docs/terminal-protocol.md §2, §6).

Per connection: frames are split by ``FrameDecoder``; each message is answered before the next is
read (terminals wait for each answer). Limits: ``max_connections``; a connection silent for
``idle_timeout`` is closed; once a frame has begun, it must complete within ``frame_timeout``; a
frame over ``max_frame_size`` gets a ``FRAME_TOO_LARGE`` answer and the connection is closed.
Every other malformation gets an error answer and the connection stays usable. Nothing but the
host's own failures is logged with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.exceptions

from card.terminal.frame import FrameDecoder
from card.terminal.host.service import Link, TerminalHost
from card.terminal.messages import ProtocolError, open_message
from card.terminal.settings import TerminalSettings
from card.terminal.spec import ResultCode
from card.terminal.tlv import TLVError

__all__ = ["Gateway"]

log = logging.getLogger("citizen.terminal.gateway")
_READ_SIZE = 65536


def _unavailable(exc: BaseException) -> bool:
    from backend.db import is_database_unavailable

    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
        is_database_unavailable(exc)
    )


class Gateway:
    def __init__(self, host: TerminalHost, settings: TerminalSettings) -> None:
        self.host = host
        self.settings = settings
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str | None = None, port: int | None = None) -> tuple[str, int]:
        self.server = await asyncio.start_server(
            self._serve,
            host or self.settings.host,
            self.settings.port if port is None else port,
            limit=_READ_SIZE,
            backlog=2048,
            reuse_port=True,  # several gateway processes may serve one address (same user only)
        )
        address = self.server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.settings.max_connections:
            writer.close()
            return
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        link = Link(peer=str(peer))
        try:
            await self._loop(link, reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _loop(self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        settings = self.settings
        decoder = FrameDecoder(settings.max_frame_size)
        frame_deadline = 0.0
        while True:
            if decoder.pending:
                if not frame_deadline:
                    frame_deadline = time.monotonic() + settings.frame_timeout
                timeout = max(0.0, frame_deadline - time.monotonic())
            else:
                frame_deadline = 0.0
                timeout = settings.idle_timeout
            data = await asyncio.wait_for(reader.read(_READ_SIZE), timeout)
            if not data:
                return
            try:
                messages = decoder.feed(data)
            except TLVError:
                writer.write(self.host.error(link, None, ResultCode.FRAME_TOO_LARGE))
                await asyncio.wait_for(writer.drain(), settings.frame_timeout)
                return
            for message in messages:
                writer.write(await self.answer(link, message))
                await asyncio.wait_for(writer.drain(), settings.frame_timeout)
            if not decoder.pending:
                frame_deadline = 0.0

    async def answer(self, link: Link, message: bytes) -> bytes:
        """The answer frame to one message (never raises for a bad message)."""
        try:
            envelope = open_message(message)
        except ProtocolError as exc:
            return self.host.error(link, None, exc.code, exc.detail)
        try:
            return await self.host.handle(link, envelope)
        except ProtocolError as exc:
            return self.host.error(link, envelope, exc.code, exc.detail)
        except Exception as exc:
            if _unavailable(exc):
                log.warning("host unavailable: %s", exc.__class__.__name__)
                return self.host.error(link, envelope, ResultCode.HOST_UNAVAILABLE, exc.__class__.__name__)
            log.exception("terminal request failed", extra={"terminal": envelope.header.terminal_id})
            return self.host.error(link, envelope, ResultCode.INTERNAL_ERROR)
