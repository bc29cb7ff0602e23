"""The SMS gateway interface, the outbox that sends off the request path, and the development
gateway that records messages in Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Protocol

import msgspec
import redis.asyncio as aioredis

from identity.checks import mask_mobile

__all__ = [
    "DEV_SMS_KEY",
    "DevelopmentSmsGateway",
    "SentMessage",
    "SmsGateway",
    "SmsOutbox",
    "read_messages",
]

log = logging.getLogger("citizen.identity.sms")

DEV_SMS_KEY = "identity:dev-sms"


class SmsGateway(Protocol):
    async def send(self, mobile: str, text: str) -> None: ...


class SmsOutbox:
    """Hands messages to the gateway in the background: a request never waits for it.

    Whether a code is sent at all can depend on a secret (sign-in codes go to registered numbers
    only); a gateway is a network call, so awaiting it in the request would answer registered
    numbers measurably later and tell them apart (ASVS 6.3.8, no enumeration by response time).
    A failed send is logged; the person asks for another code.
    """

    def __init__(self, gateway: SmsGateway) -> None:
        self.gateway = gateway
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, mobile: str, text: str) -> None:
        """Queue ``text`` for ``mobile``; returns at once, before the gateway is called."""
        task = asyncio.create_task(self._deliver(mobile, text), name="identity-sms")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, mobile: str, text: str) -> None:
        try:
            await self.gateway.send(mobile, text)
        except Exception:
            log.exception("the SMS gateway failed", extra={"to": mask_mobile(mobile)})

    async def settle(self) -> None:
        """Wait for the messages queued so far (shutdown, and readers of the development log)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


class SentMessage(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    text: str
    sent_at: dt.datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SentMessage)


class DevelopmentSmsGateway:
    """Keeps the last ``capacity`` messages in a capped Redis list (newest first); sends nothing.

    This is the only place a plaintext mobile number is kept outside the encrypted columns, which is
    why the gateway exists for development and the demo only.
    """

    def __init__(self, redis: aioredis.Redis, capacity: int = 200) -> None:
        self._redis = redis
        self._capacity = capacity

    async def send(self, mobile: str, text: str) -> None:
        message = SentMessage(to=mobile, text=text, sent_at=dt.datetime.now(dt.UTC))
        async with self._redis.pipeline(transaction=True) as pipe:
            _ = pipe.lpush(DEV_SMS_KEY, _encoder.encode(message))  # queued, not awaited
            _ = pipe.ltrim(DEV_SMS_KEY, 0, self._capacity - 1)
            await pipe.execute()
        log.info("sms recorded by the development gateway", extra={"to": mask_mobile(mobile)})


async def read_messages(
    redis: aioredis.Redis, limit: int = 20, mobile: str | None = None
) -> list[SentMessage]:
    """Newest first; ``mobile`` filters on the recipient."""
    raw = await redis.lrange(DEV_SMS_KEY, 0, -1 if mobile else limit - 1)
    messages = [_decoder.decode(item) for item in raw]
    if mobile:
        messages = [m for m in messages if m.to == mobile]
    return messages[:limit]
