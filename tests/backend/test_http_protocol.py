"""``backend.http_protocol``: a response's head and body leave in one send, streams still stream,
keep-alive and close behave as uvicorn's own protocol does (a real uvicorn server on a socket)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from backend.http_protocol import OneSendPerTurn, _JoinedWrites


class _Recording:
    """The real transport's side of the wrapper: what reached ``write``, and closing."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_the_writes_of_one_turn_leave_in_one_write() -> None:
    real = _Recording()
    joined = _JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    joined.write(b"ok")
    assert real.writes == [] and joined.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    joined.write(b"later")  # a later turn: its own write
    await asyncio.sleep(0)
    assert real.writes[1:] == [b"later"]
    assert joined.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the real one's


async def test_close_sends_what_was_written_and_abort_drops_it() -> None:
    real = _Recording()
    joined = _JoinedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    joined.write(b"last words")
    joined.close()
    assert real.writes == [b"last words"] and real.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert real.writes == [b"last words"]
    other = _Recording()
    dropped = _JoinedWrites(other, asyncio.get_running_loop())  # type: ignore[arg-type]
    dropped.write(b"never")
    dropped.abort()
    await asyncio.sleep(0)
    assert other.writes == [] and other.aborted


# -- a real uvicorn server ------------------------------------------------------------------------

_stream: dict[str, asyncio.Event] = {}  # the running test's "first chunk read" event


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await _stream["seen"].wait()  # the client has read the first chunk: it was not held back
        await send({"type": "http.response.body", "body": b"second"})
        return
    body = scope["path"].encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(_app, http=OneSendPerTurn, log_config=None, lifespan="on", access_log=False)
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    while not running.started:
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    running.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task
    sock.close()


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.startswith(b"content-length"))
    )
    return head + await reader.readexactly(length)


async def test_keep_alive_answers_in_order(server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    for path in (b"/one", b"/two", b"/three"):
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        answer = await _read_response(reader)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\n" + path)
    writer.write(b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert (await _read_response(reader)).endswith(b"/last")
    assert await reader.read() == b""  # closed after what was written was sent
    writer.close()


async def test_a_stream_still_streams(server: int) -> None:
    seen = _stream["seen"] = asyncio.Event()
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    # The first chunk arrives before the second exists (the bound only keeps a broken run from hanging).
    assert await asyncio.wait_for(reader.readuntil(b"first\r\n"), 30) == b"5\r\nfirst\r\n"
    seen.set()
    assert await reader.readuntil(b"0\r\n\r\n") == b"6\r\nsecond\r\n0\r\n\r\n"
    writer.close()
