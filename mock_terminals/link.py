"""A terminal's protocol link: connect, sign on, send MACed requests, read MACed answers.

Recovery as docs/terminal-protocol.md §4 asks of a terminal: a dropped connection is re-opened
and the request re-sent (with a new sequence number); ``NOT_SIGNED_ON`` (session expired, Redis
restarted, another gateway) triggers a fresh sign-on and a re-send; ``HOST_UNAVAILABLE`` waits and
re-sends. Requests are idempotent on the host (batches by record, loads by load id), so re-sending
is always safe.

An answer is trusted as §2 and §3 say: it must echo this terminal's id and the request's sequence
number, and carry a MAC under the session key, except an error answer, which may carry the all-zero
MAC; of such an answer only the result and detail are passed on (the caller reports them), never
its other fields. An answer that fails these checks raises :class:`UntrustedAnswer` and the
connection is closed (its stream may hold the real answer); nothing in it is acted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Final, TypeVar

from card.terminal.frame import FrameDecoder
from card.terminal.messages import (
    EncodedBody,
    Envelope,
    ErrorResponse,
    InvalidUnwrap,
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
from card.terminal.spec import MessageType, ResultCode

__all__ = ["LinkError", "TerminalLink", "UntrustedAnswer"]

R = TypeVar("R", bound=Response)
_RETRY_CODES = frozenset({ResultCode.HOST_UNAVAILABLE})


class LinkError(Exception):
    def __init__(self, code: ResultCode | int, detail: str = "") -> None:
        super().__init__(
            f"{ResultCode(code).name if code in ResultCode._value2member_map_ else code}: {detail}"
        )
        self.code = code


class UntrustedAnswer(LinkError):
    """An answer the link did not act on: not this request's (terminal id, sequence), a MAC that does
    not verify, an all-zero MAC on an answer that is not an error, or the host's ``ERROR`` to a frame
    it could not read (``code`` is then the host's result code). The connection has been closed."""


_UNATTRIBUTED_ID: Final = "-"  # the terminal id of the host's answer to a frame it could not parse


def _attributed(envelope: Envelope, terminal_id: str, sequence: int, cls: type[Response]) -> None:
    """The answer must echo the request's terminal id and sequence number (§2) and be of the
    request's answer type or ``ERROR``."""
    header = envelope.header
    if header.message_type == MessageType.ERROR and (header.terminal_id, header.sequence) == (
        _UNATTRIBUTED_ID,
        0,
    ):
        error = envelope.expect(ErrorResponse)
        raise UntrustedAnswer(error.result, f"the host could not read the request: {error.detail or ''}")
    if header.terminal_id != terminal_id:
        raise UntrustedAnswer(ResultCode.BAD_FIELD_VALUE, f"answer for terminal {header.terminal_id!r}")
    if header.sequence != sequence:
        raise UntrustedAnswer(
            ResultCode.BAD_FIELD_VALUE, f"answer to sequence {header.sequence}, request was {sequence}"
        )
    if header.message_type not in (cls.TYPE, MessageType.ERROR):
        raise UntrustedAnswer(ResultCode.UNKNOWN_MESSAGE_TYPE, f"answer type {header.message_type:02X}")


def _trusted(envelope: Envelope, cls: type[R], key: bytes | None) -> R:
    """The answer's body as far as its MAC lets it be trusted (§3). An all-zero MAC is accepted only
    on an error; of such an answer only the result and detail are kept."""
    error = envelope.header.message_type == MessageType.ERROR
    if envelope.unauthenticated:
        body: Response = envelope.expect(ErrorResponse) if error else envelope.expect(cls)
        if body.result == ResultCode.OK:
            raise UntrustedAnswer(ResultCode.BAD_MAC, "all-zero MAC on an answer that is not an error")
        return cls(result=body.result, detail=body.detail)
    if key is None or not envelope.verify(key):
        raise UntrustedAnswer(ResultCode.BAD_MAC, "answer MAC")
    if not error:
        return envelope.expect(cls)
    refusal = envelope.expect(ErrorResponse)
    if refusal.result == ResultCode.OK:
        raise UntrustedAnswer(ResultCode.BAD_FIELD_VALUE, "ERROR answer with result OK")
    return cls(result=refusal.result, detail=refusal.detail)


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
        previous = self.session_key  # a refusal on this connection is MACed with it (§3)
        raw, sequence = await self._exchange(
            SignOn(nonce=os.urandom(16), software_version="mock-terminals/1"), self._auth_key
        )
        try:
            answer, key = self._sign_on_answer(raw, sequence, previous)
        except UntrustedAnswer:
            await self.close()
            raise
        self.session_key = key
        self.sign_ons += 1
        self.versions = (
            answer.fare_version or 0,
            answer.blacklist_version or 0,
            answer.parameter_version or 0,
        )
        return answer

    def _sign_on_answer(
        self, raw: bytes, sequence: int, previous: bytes | None
    ) -> tuple[SignOnResponse, bytes]:
        """The accepted sign-on answer and its session key; a refusal raises :class:`LinkError`."""
        envelope = open_message(raw)
        _attributed(envelope, self.terminal_id, sequence, SignOnResponse)
        answer = None
        if envelope.header.message_type == SignOnResponse.TYPE:
            answer = envelope.expect(SignOnResponse)
        if answer is None or answer.result != ResultCode.OK:
            refusal = _trusted(envelope, SignOnResponse, previous)
            raise LinkError(refusal.result, refusal.detail or "sign-on refused")
        if answer.wrapped_key is None:
            raise UntrustedAnswer(ResultCode.MISSING_FIELD, "sign-on answer without a session key")
        try:
            key = unwrap_session_key(self._kek, answer.wrapped_key)
        except InvalidUnwrap:
            raise UntrustedAnswer(ResultCode.BAD_MAC, "sign-on answer key") from None
        if not envelope.verify(key):
            raise UntrustedAnswer(ResultCode.BAD_MAC, "sign-on answer")
        return answer, key

    async def request(self, body: Message | EncodedBody, answer: type[R]) -> R:
        """Send ``body``; return its answer (any result code). Retries transport failures."""
        async with self._lock:
            last: BaseException | None = None
            for _ in range(self.retries):
                try:
                    if self.session_key is None:
                        await self._sign_on()
                    raw, sequence = await self._exchange(body, self.session_key)
                    envelope = open_message(raw)
                    _attributed(envelope, self.terminal_id, sequence, answer)
                    result = _trusted(envelope, answer, self.session_key)
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
                except UntrustedAnswer:
                    await self.close()
                    raise
                except LinkError as exc:
                    if exc.code in _RETRY_CODES:
                        last = exc
                        await asyncio.sleep(self.retry_delay)
                        continue
                    raise
                except ProtocolError as exc:
                    raise LinkError(exc.code, exc.detail) from None
            raise LinkError(ResultCode.HOST_UNAVAILABLE, f"gave up: {last!r}")
