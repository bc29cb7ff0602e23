"""backend.redis_reads: the lean connection answers as redis-py does, in order under concurrency,
and recovers from a lost connection and a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
import redis.exceptions

from backend.redis_reads import ClientReads, LeanReads, attach, reads_of
from backend.runtime import Services


@pytest_asyncio.fixture
async def lean(redis_client: aioredis.Redis) -> AsyncIterator[LeanReads]:
    reads = attach(redis_client)
    assert reads is not None
    yield reads
    await reads.aclose()


async def test_replies_as_redis_py(redis_client: aioredis.Redis, lean: LeanReads) -> None:
    await redis_client.set("a", b"1")
    await redis_client.hset("h", mapping={"p": b"x", "ctx": b"y"})
    assert reads_of(redis_client) is lean
    assert await lean.call("GET", "a") == await redis_client.get("a") == b"1"
    assert await lean.call("MGET", "a", b"missing", "a") == [b"1", None, b"1"]
    assert await lean.call("HMGET", "h", "p", "ctx", "none") == [b"x", b"y", None]
    found, fields = await lean.pipeline([("MGET", "a", "b"), ("HMGET", "h", "ctx")])
    assert (found, fields) == ([b"1", None], [b"y"])
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        await lean.call("HMGET", "a", "p")
    with pytest.raises(redis.exceptions.ResponseError):
        await lean.pipeline([("GET", "a"), ("HMGET", "a", "p")])
    assert await lean.call("GET", "a") == b"1"  # an error reply leaves the connection usable


async def test_unattached_client_reads_through_itself(services: Services) -> None:
    url = services.settings.redis.url
    assert url is not None
    client = aioredis.from_url(url.reveal())
    try:
        reads = reads_of(client)
        assert isinstance(reads, ClientReads)
        await client.set("a", b"2")
        assert await reads.call("MGET", "a", "b") == [b"2", None]
        assert await reads.pipeline([("GET", "a"), ("HMGET", "unattached-h", "p")]) == [b"2", [None]]
    finally:
        await client.aclose()


async def test_concurrent_callers_get_their_own_replies(
    redis_client: aioredis.Redis, lean: LeanReads
) -> None:
    await redis_client.mset({f"k{i}": str(i) for i in range(300)})
    replies = await asyncio.gather(*(lean.call("GET", f"k{i}") for i in range(300)))
    assert replies == [str(i).encode() for i in range(300)]


async def test_a_lost_connection_is_made_again(redis_client: aioredis.Redis, lean: LeanReads) -> None:
    await redis_client.set("a", b"3")
    assert await lean.call("GET", "a") == b"3"
    await redis_client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # type: ignore[no-untyped-call]
    # Whether or not the lean connection has seen the close yet, a read is answered: one not yet
    # sent goes out on a new connection, one lost with the old connection is sent again (reads only).
    assert await lean.call("GET", "a") == b"3"


async def test_timeout_drops_the_connection_and_the_late_reply(services: Services) -> None:
    url = services.settings.redis.url
    assert url is not None
    client = aioredis.from_url(url.reveal(), socket_timeout=0.1)
    reads = attach(client)
    assert reads is not None
    try:
        await client.set("a", b"4")
        await client.set("b", b"5")
        assert await reads.call("GET", "a") == b"4"
        await client.execute_command("CLIENT", "PAUSE", "2000")  # type: ignore[no-untyped-call]  # all, reads too
        with pytest.raises(redis.exceptions.TimeoutError):
            await reads.call("GET", "a")
        # A client without a timeout: answered once the pause is over and the late reply is out.
        patient = aioredis.from_url(url.reveal())
        try:
            assert await patient.ping()
        finally:
            await patient.aclose()
        assert await reads.call("GET", "b") == b"5"  # never the late answer to GET a
    finally:
        await reads.aclose()
        await client.aclose()


async def test_no_server_fails_every_caller_at_once(tmp_path: Path) -> None:
    client = aioredis.from_url(f"unix://{tmp_path / 'none.sock'}", socket_timeout=1.0)
    reads = attach(client)
    assert reads is not None
    try:
        results = await asyncio.gather(*(reads.call("GET", "a") for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, redis.exceptions.ConnectionError) for r in results), results
    finally:
        await reads.aclose()
        await client.aclose()


async def test_closed_reads_give_way_to_the_client(redis_client: aioredis.Redis, lean: LeanReads) -> None:
    await redis_client.set("a", b"6")
    assert await lean.call("GET", "a") == b"6"
    await lean.aclose()
    assert isinstance(reads_of(redis_client), ClientReads)
    assert await reads_of(redis_client).call("GET", "a") == b"6"
    with pytest.raises(redis.exceptions.ConnectionError):
        await lean.call("GET", "a")


async def test_a_decoding_client_gets_text(services: Services) -> None:
    url = services.settings.redis.url
    assert url is not None
    client = aioredis.from_url(url.reveal(), decode_responses=True)
    reads = attach(client)
    assert reads is not None
    try:
        await client.set("t", "市民卡")
        assert await reads.call("MGET", "t", "none") == await client.mget(["t", "none"]) == ["市民卡", None]
    finally:
        await reads.aclose()
        await client.aclose()


async def test_once_is_never_sent_twice(tmp_path: Path) -> None:
    """``once`` (a script that consumes a token) is not retried after a lost connection, where
    ``call`` (a read) is: a server that hangs up on every command sees one, then two."""
    received: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read(1024))
        writer.close()

    path = str(tmp_path / "hang-up.sock")
    server = await asyncio.start_unix_server(hang_up, path)
    client = aioredis.Redis(unix_socket_path=path, socket_timeout=5)
    reads = LeanReads(client)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await reads.once("EVALSHA", "0" * 40, 0)
        assert len(received) == 1
        with pytest.raises(redis.exceptions.ConnectionError):
            await reads.call("GET", "a")
        assert len(received) == 3
    finally:
        reads.close()
        server.close()
        await client.aclose()
