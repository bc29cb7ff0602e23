"""A terminal's protocol link: connect, sign on, send MACed requests, read MACed answers.

Recovery as docs/terminal-protocol.md §6 asks of a terminal: a dropped connection is re-opened
and the request re-sent (with a new sequence number); ``NOT_SIGNED_ON`` (session expired, Redis
restarted, another gateway) triggers a fresh sign-on and a re-send; ``HOST_UNAVAILABLE`` waits and
re-sends. Requests are idempotent on the host (batches by record, loads by load id), so re-sending
is always safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TypeVar

from card.terminal.frame import FrameDecoder
from card.terminal.messages import (
    EncodedBody,
    Envelope,
    Message,
    ProtocolError,
    Response,
    SignOn,
    SignOnResponse,
    open_message,
    seal_frame,
    sign_on_keys,
    unwrap_session_key,
)
from card.terminal.spec import ResultCode

__all__ = ["LinkError", "TerminalLink"]

R = TypeVar("R", bound=Response)
_RETRY_CODES = frozenset({ResultCode.HOST_UNAVAILABLE})


class LinkError(Exception):
    def __init__(self, code: ResultCode | int, detail: str = "") -> None:
        super().__init__(
            f"{ResultCode(code).name if code in ResultCode._value2member_map_ else code}: {detail}"
        )
        self.code = code


def _check_answer_mac(envelope: Envelope, key: bytes | None) -> None:
    """Answers carry the session MAC; only error answers sent before a session may carry zeros."""
    if not envelope.unauthenticated and key is not None and not envelope.verify(key):
        raise LinkError(ResultCode.BAD_MAC, "answer MAC")


class TerminalLink:
    def __init__(
        self,
        terminal_id: str,
        tmk: bytes,
        host: str,
        port: int,
        *,
        timeout: float = 30.0,
        retries: int = 200,
        retry_delay: float = 0.1,
    ) -> None:
        self.terminal_id = terminal_id
        self.host, self.port = host, port
        self._auth_key, self._kek = sign_on_keys(tmk)
        self.session_key: bytes | None = None
        self.sequence = int(time.time()) & 0x3FFFFFFF  # strictly increasing, also across restarts
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.sign_ons = 0
        self.reconnects = 0
        self.versions = (0, 0, 0)  # fare, blacklist, parameters as last reported by the host
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def _connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )
        self._decoder = FrameDecoder()

    async def _exchange(self, body: Message | EncodedBody, key: bytes | None) -> tuple[bytes, int]:
        if self._writer is None or self._reader is None:
            await self._connect()
        assert self._writer is not None and self._reader is not None
        self.sequence += 1
        frame = seal_frame(
            body, terminal_id=self.terminal_id, sequence=self.sequence, time=int(time.time()), key=key
        )
        self._writer.write(frame)
        await asyncio.wait_for(self._writer.drain(), self.timeout)
        while True:
            data = await asyncio.wait_for(self._reader.read(65536), self.timeout)
            if not data:
                raise ConnectionResetError("the gateway closed the connection")
            messages = self._decoder.feed(data)
            if messages:
                return messages[0], self.sequence

    async def sign_on(self) -> SignOnResponse:
        async with self._lock:
            return await self._sign_on()

    async def _sign_on(self) -> SignOnResponse:
        raw, _ = await self._exchange(
            SignOn(nonce=os.urandom(16), software_version="mock-terminals/1"), self._auth_key
        )
        envelope = open_message(raw)
        answer = envelope.expect(SignOnResponse) if envelope.header.message_type == 0x81 else None
        if answer is None or answer.result != ResultCode.OK or answer.wrapped_key is None:
            from card.terminal.messages import ErrorResponse

            error = answer or envelope.expect(ErrorResponse)
            raise LinkError(error.result, error.detail or "sign-on refused")
        key = unwrap_session_key(self._kek, answer.wrapped_key)
        if not envelope.verify(key):
            raise LinkError(ResultCode.BAD_MAC, "sign-on answer")
        self.session_key = key
        self.sign_ons += 1
        self.versions = (
            answer.fare_version or 0,
            answer.blacklist_version or 0,
            answer.parameter_version or 0,
        )
        return answer

    async def request(self, body: Message | EncodedBody, answer: type[R]) -> R:
        """Send ``body``; return its answer (any result code). Retries transport failures."""
        async with self._lock:
            last: BaseException | None = None
            for _ in range(self.retries):
                try:
                    if self.session_key is None:
                        await self._sign_on()
                    raw, _ = await self._exchange(body, self.session_key)
                    envelope = open_message(raw)
                    _check_answer_mac(envelope, self.session_key)
                    if envelope.header.message_type == answer.TYPE:
                        result: R = envelope.expect(answer)
                    else:
                        from card.terminal.messages import ErrorResponse

                        error = envelope.expect(ErrorResponse)
                        result = answer(result=error.result, detail=error.detail)
                    if result.result == ResultCode.NOT_SIGNED_ON:
                        self.session_key = None
                        continue
                    if result.result not in _RETRY_CODES:
                        return result
                    await asyncio.sleep(self.retry_delay)
                except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    last = exc
                    self.reconnects += 1
                    await self.close()
                    await asyncio.sleep(self.retry_delay)
                except LinkError as exc:
                    if exc.code in _RETRY_CODES:
                        last = exc
                        await asyncio.sleep(self.retry_delay)
                        continue
                    raise
                except ProtocolError as exc:
                    raise LinkError(exc.code, exc.detail) from None
            raise LinkError(ResultCode.HOST_UNAVAILABLE, f"gave up: {last!r}")
