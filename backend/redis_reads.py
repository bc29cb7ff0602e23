"""Hot-path Redis commands over one lean, pipelined connection: the reads of every request
(``GET``, ``MGET``, ``HMGET``) and the token endpoint's scripts (``once``: never retried).

redis-py's asyncio client spends ~50 µs of CPU on a command (a pool checkout, the retry and
observability wrappers, stream reader and writer, and, with a socket timeout, a task per write
from ``asyncio.wait_for``); the same read over a plain ``asyncio.Protocol`` with hiredis's reply
parser costs ~14 µs. The app's busiest pages (the token check and the home's one ``MGET``) read
through :func:`reads_of`, and the OpenID token endpoint runs its two per-request scripts
through one (``identity.oidc.redis_channel``); everything else keeps using redis-py.

``reads_of(client)`` gives the :class:`LeanReads` attached to that client (``attach``: the app's
own client, opened and closed with it), or else a :class:`ClientReads` that runs the same
commands through the client itself, exactly as before (tests' own clients, TLS URLs).

The lean connection sends the commands asked for in one turn of the event loop together, in one
write at the end of the turn (several requests' commands share the one socket; Redis answers in
order), and matches replies to callers first in, first out. Its errors are redis-py's:
``ResponseError`` for an error reply, ``ConnectionError`` when the connection is lost (a lost
connection is made again on the next command; ``call`` and ``pipeline`` then try once more,
``once`` does not), ``TimeoutError`` when no answer comes within the client's socket timeout
(the connection is then dropped, as redis-py does, so a late answer can never be taken for
another's).
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["Arg", "ClientReads", "LeanReads", "Reads", "attach", "reads_of"]

Arg = str | bytes | int | float
Command = Sequence[Arg]
# hiredis's stub types its argument as a tuple of one element.
_pack = cast("Callable[[tuple[Arg, ...]], bytes]", hiredis.pack_command)


class Reads(Protocol):
    async def call(self, *args: Arg) -> Any:
        """One command's reply (an error reply raised as ``ResponseError``)."""

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Several commands in one round trip; the first error reply is raised."""

    async def once(self, *args: Arg) -> Any:
        """One command, never sent twice: for commands that change state (a script consuming a
        single-use token would run again if its reply were lost and the command retried)."""


class ClientReads:
    """The same reads through a redis-py client (its pool, retries and timeouts)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def call(self, *args: Arg) -> Any:
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def once(self, *args: Arg) -> Any:
        return await self._client.execute_command(*args)  # type: ignore[no-untyped-call]

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                _ = pipe.execute_command(*command)  # queued, not awaited
            return list(await pipe.execute())


class _Link(asyncio.Protocol):
    """One connection: replies handed to the waiting futures in order."""

    def __init__(self, encoding: str | None = None, errors: str = "strict") -> None:
        # Bytes, or str when the client decodes its replies (decode_responses), as it would.
        self.reader = (
            hiredis.Reader(replyError=ResponseError)
            if encoding is None
            else hiredis.Reader(replyError=ResponseError, encoding=encoding, errors=errors)
        )
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        # Commands asked for in one turn of the event loop leave in one write (one system call,
        # one wake-up of Redis) at the end of that turn, not one each.
        self.outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiting = self.waiting
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not waiting:  # nobody asked: the stream cannot be trusted any more
                self.abort(RedisConnectionError("Redis answered a command that was not sent"))
                return
            future = waiting.popleft()
            if not future.done():  # a caller cancelled (its reply is read and dropped)
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(RedisConnectionError("Connection closed by server." if exc is None else str(exc)))

    @property
    def usable(self) -> bool:
        """Not lost and not closing: a transport that has seen the server's EOF is closing a turn
        of the loop before ``connection_lost`` marks it lost."""
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def send(self, payload: bytes, count: int) -> list[asyncio.Future[Any]]:
        if not self.usable:
            raise RedisConnectionError("Redis connection is closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(count)]
        self.waiting.extend(futures)
        if not self.outgoing:
            loop.call_soon(self.flush)
        self.outgoing.append(payload)
        return futures

    def flush(self) -> None:
        outgoing, self.outgoing = self.outgoing, []
        if not self.lost and self.transport is not None and not self.transport.is_closing():
            self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))
        # else: connection_lost or abort has failed (or will fail) their futures already

    def abort(self, error: Exception) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        waiting, self.waiting = self.waiting, collections.deque()
        for future in waiting:
            if not future.done():
                future.set_exception(error)


class LeanReads:
    """Reads over one lean connection, made from a redis-py client's connection settings."""

    def __init__(self, client: aioredis.Redis, *, timeout: float | None = None) -> None:
        kwargs = client.connection_pool.connection_kwargs
        self._path: str | None = kwargs.get("path")
        self._host: str = kwargs.get("host", "localhost")
        self._port: int = int(kwargs.get("port", 6379))
        self._db = int(kwargs.get("db", 0) or 0)
        self._username: str | None = kwargs.get("username")
        self._password: str | None = kwargs.get("password")
        self._timeout: float | None = timeout if timeout is not None else kwargs.get("socket_timeout")
        self._connect_timeout: float | None = kwargs.get("socket_connect_timeout") or self._timeout
        decode = bool(kwargs.get("decode_responses"))
        self._encoding: str | None = kwargs.get("encoding", "utf-8") if decode else None
        self._errors: str = kwargs.get("encoding_errors", "strict")
        self._link: _Link | None = None
        self._attempt: asyncio.Future[_Link] | None = None
        self.closed = False

    @staticmethod
    def supports(client: aioredis.Redis) -> bool:
        """Plain TCP or a Unix socket (not TLS, not a custom connection class)."""
        return client.connection_pool.connection_class in {Connection, UnixDomainSocketConnection}

    async def call(self, *args: Arg) -> Any:
        (reply,) = await self._round_trip(_pack(args), 1)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def once(self, *args: Arg) -> Any:
        (reply,) = await self._once(_pack(args), 1)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        payload = b"".join(_pack(tuple(c)) for c in commands)
        replies = await self._round_trip(payload, len(commands))
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def aclose(self) -> None:
        """Closed for good: ``reads_of`` gives the client's own commands from now on."""
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._attempt is not None:
            self._attempt.cancel()
        link, self._link = self._link, None
        if link is not None and link.transport is not None:
            link.transport.close()

    async def _round_trip(self, payload: bytes, count: int) -> list[Any]:
        try:
            return await self._once(payload, count)
        except RedisConnectionError:
            return await self._once(payload, count)  # a reconnection, then once more (reads only)

    async def _once(self, payload: bytes, count: int) -> list[Any]:
        link = self._link
        if link is None or not link.usable:  # nothing was sent on it: a new one is safe, even once
            if self.closed:
                raise RedisConnectionError("the lean Redis connection is closed")
            link = await self._connect()
        futures = link.send(payload, count)
        # A timer rather than asyncio.timeout (a third of the cost of a command here): at the
        # deadline the call's unanswered futures fail with TimeoutError and the link is dropped.
        timer = None
        if self._timeout:
            timer = asyncio.get_running_loop().call_later(self._timeout, _expire, link, futures)
        try:
            if count == 1:
                return [await futures[0]]
            return [await future for future in futures]
        except BaseException:
            _settle(futures)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _connect(self) -> _Link:
        """One attempt at a time, shared by every caller that finds no connection (so callers
        never queue up one connection timeout each behind an unreachable server)."""
        attempt = self._attempt
        if attempt is None:
            attempt = self._attempt = asyncio.ensure_future(self._open())
            attempt.add_done_callback(self._attempted)
        return await asyncio.shield(attempt)  # a caller cancelled leaves the attempt to the rest

    def _attempted(self, attempt: asyncio.Future[_Link]) -> None:
        self._attempt = None
        if not attempt.cancelled():
            _ = attempt.exception()  # seen here, whether or not a caller still awaits it

    async def _open(self) -> _Link:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):

                def made() -> _Link:
                    return _Link(self._encoding, self._errors)

                if self._path is not None:
                    _, link = await loop.create_unix_connection(made, self._path)
                else:
                    _, link = await loop.create_connection(made, self._host, self._port)
                try:
                    await _setup(link, self._username, self._password, self._db)
                except BaseException:
                    link.abort(RedisConnectionError("Redis connection setup failed"))
                    raise
        except TimeoutError:
            raise RedisTimeoutError("Timeout connecting to server") from None
        except OSError as exc:
            raise RedisConnectionError(f"Error connecting to Redis: {exc}") from exc
        if self.closed:  # closed while connecting
            link.abort(RedisConnectionError("the lean Redis connection is closed"))
            raise RedisConnectionError("the lean Redis connection is closed")
        self._link = link
        return link


async def _setup(link: _Link, username: str | None, password: str | None, db: int) -> None:
    setup: list[Command] = []
    if password is not None:
        setup.append(["AUTH", password] if username is None else ["AUTH", username, password])
    if db:
        setup.append(["SELECT", db])
    if not setup:
        return
    futures = link.send(b"".join(_pack(tuple(c)) for c in setup), len(setup))
    try:
        for reply in [await f for f in futures]:
            if isinstance(reply, ResponseError):
                raise reply
    finally:
        _settle(futures)


def _expire(link: _Link, futures: list[asyncio.Future[Any]]) -> None:
    if all(future.done() for future in futures):
        return
    for future in futures:
        if not future.done():
            future.set_exception(RedisTimeoutError("Timeout reading from socket"))
    link.abort(RedisTimeoutError("Timeout reading from socket"))  # a late answer is never taken


def _settle(futures: list[asyncio.Future[Any]]) -> None:
    """A call's futures it no longer awaits: cancelled (their replies will be dropped), or
    their error marked as seen (no "exception was never retrieved" at collection)."""
    for future in futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            _ = future.exception()


_attached: weakref.WeakKeyDictionary[aioredis.Redis, LeanReads] = weakref.WeakKeyDictionary()


def attach(client: aioredis.Redis) -> LeanReads | None:
    """A lean connection for ``client``'s hot reads (None if its connection kind is not
    supported): the caller closes it (``aclose``) with the client."""
    if not LeanReads.supports(client):
        return None
    reads = _attached[client] = LeanReads(client)
    return reads


def reads_of(client: aioredis.Redis) -> Reads:
    """The lean reads attached to ``client``, else the client's own commands."""
    reads = _attached.get(client)
    return reads if reads is not None and not reads.closed else ClientReads(client)
