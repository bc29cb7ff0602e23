"""The token endpoint's Lua scripts over one multiplexed Redis connection.

A refresh and a code exchange are each one script call (``grants.py``), but redis-py's asyncio
client spent about as much CPU around that one round trip as the two ES256 signatures of the
answer: a pool checkout and return, a health check, a retry wrapper, ``wait_for``, command
packing in Python. Here the calls of every concurrent request share one connection: each command
is written in RESP, commands written in the same turn of the event loop leave in one ``write``,
and the replies (parsed by hiredis, the parser redis-py uses too) are matched to the callers in
order. Redis runs each script atomically either way; this changes only how the bytes travel.

On a timeout or a lost connection every call in flight fails with ``redis.ConnectionError`` (as
redis-py's would) and the next call connects again: a reply is never matched to the wrong caller.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = ["ScriptChannel"]

Arg = str | bytes | int | float


def _pack(*args: Arg) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, bytes):
            data = arg
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream cannot be trusted
                self.fail(RedisConnectionError("unexpected reply from Redis"))
                return
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail_waiting(RedisConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def _fail_waiting(self, exc: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def fail(self, exc: Exception) -> None:
        """Abandon the connection and everything in flight on it."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_waiting(exc)

    def send(self, command: bytes, future: asyncio.Future[Any]) -> None:
        if self.closed:
            future.set_exception(RedisConnectionError("Redis connection lost"))
            return
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self.outgoing.append(command)
        self.waiting.append(future)

    def _flush(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()


class ScriptChannel:
    """``EVALSHA`` (``EVAL`` when the server does not know the script yet) on one shared
    connection, made from the settings of ``redis``'s pool on first use."""

    def __init__(self, redis: aioredis.Redis, *, timeout: float | None = None) -> None:
        self._kwargs: dict[str, Any] = dict(redis.connection_pool.connection_kwargs)
        self._timeout = timeout if timeout is not None else self._kwargs.get("socket_timeout") or 5.0
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): the old connection belongs to another
            self._loop, self._protocol, self._connecting = loop, None, asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            kw = self._kwargs
            connect_timeout = kw.get("socket_connect_timeout") or self._timeout
            async with asyncio.timeout(connect_timeout):
                if kw.get("path"):
                    _, protocol = await loop.create_unix_connection(_Protocol, kw["path"])
                else:
                    _, protocol = await loop.create_connection(
                        _Protocol, kw.get("host", "localhost"), int(kw.get("port", 6379))
                    )
                setup: list[tuple[Arg, ...]] = []
                if kw.get("password"):
                    user = kw.get("username")
                    setup.append(("AUTH", user, kw["password"]) if user else ("AUTH", kw["password"]))
                if int(kw.get("db") or 0):
                    setup.append(("SELECT", int(kw["db"])))
                for command in setup:
                    reply = await self._call(protocol, _pack(*command))
                    if isinstance(reply, hiredis.ReplyError):
                        protocol.fail(RedisConnectionError("Redis refused the connection setup"))
                        raise RedisConnectionError(f"Redis refused {command[0]!s}: {reply}")
            self._protocol = protocol
            return protocol

    async def _call(self, protocol: _Protocol, command: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(command, future)
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            protocol.fail(RedisConnectionError("Redis did not answer in time"))
            raise RedisConnectionError("Redis did not answer in time") from None

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """The script's reply; a Redis error reply is raised as ``ResponseError``."""
        protocol = self._protocol
        if protocol is None or protocol.closed or self._loop is not asyncio.get_running_loop():
            protocol = await self._connect()
        reply = await self._call(protocol, _pack("EVALSHA", script.sha, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT"):
            # Not executed; the server lost its script cache (a restart, SCRIPT FLUSH).
            source = script.script if isinstance(script.script, str | bytes) else bytes(script.script)
            reply = await self._call(protocol, _pack("EVAL", source, len(keys), *keys, *args))
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("the script channel is closed"))
            self._protocol = None
