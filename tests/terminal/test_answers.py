"""What a terminal trusts in an answer (docs/terminal-protocol.md §2, §3) and how it sizes a batch (§1).

Against a scripted host (the public codec only): a forged or misdirected answer — all-zero MAC on
a success, another request's sequence number, another terminal's id, a MAC under another key — is
never acted on, and the bus reader keeps its records; an error with an all-zero MAC is reported,
nothing more. Against the real gateway: the MACs the host puts on its error answers, as §3 states
them, and batches of QR records split to fit a 65,535-byte frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from card.terminal.frame import MAX_FRAME_SIZE, FrameDecoder
from card.terminal.messages import (
    BatchResponse,
    BatchUpload,
    Envelope,
    ErrorResponse,
    OfflineRecord,
    RecordOutcome,
    Response,
    SignOn,
    SignOnResponse,
    key_check_value,
    open_message,
    seal,
    seal_frame,
    sign_on_keys,
    unwrap_session_key,
    wrap_session_key,
)
from card.terminal.records import dt7, qr_account
from card.terminal.spec import MessageType, RecordKind, RecordResult, ResultCode
from mock_terminals.bus import BusReader, SoftwarePsam
from mock_terminals.link import LinkError, TerminalLink, UntrustedAnswer
from tests.terminal.conftest import Rig

TERMINAL = "BUS-T1"
TMK = bytes(range(16))

# A forger: (the request, the session key) -> the answer frame.
Forge = Callable[[Envelope, bytes], bytes]


def _answer(
    request: Envelope,
    body: Response,
    key: bytes | None,
    *,
    terminal_id: str | None = None,
    sequence: int | None = None,
) -> bytes:
    header = request.header
    return seal_frame(
        body,
        terminal_id=header.terminal_id if terminal_id is None else terminal_id,
        sequence=header.sequence if sequence is None else sequence,
        time=int(time.time()),
        key=key,
    )


def _all_accepted(request: Envelope, result: int = ResultCode.OK) -> BatchResponse:
    batch = request.body()
    assert isinstance(batch, BatchUpload)
    return BatchResponse(
        result=result,
        batch_number=batch.batch_number,
        record_count=len(batch.records),
        outcomes=tuple(
            RecordOutcome(terminal_serial=r.terminal_serial, result=RecordResult.ACCEPTED)
            for r in batch.records
        ),
    )


def honest(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request), key)


@dataclass
class ScriptedHost:
    """Signs terminals on as the real host does (§3, §4); answers every other request with
    ``forge``, then with :func:`honest` (``forge`` is used ``times`` times)."""

    forge: Forge = honest
    times: int = 1
    connections: int = 0
    session: bytes = b""  # the session key of the last sign-on
    requests: list[tuple[int, Envelope]] = field(default_factory=list)  # (message size, request)
    sign_on_forge: Callable[[Envelope, bytes, bytes], bytes] | None = None

    def _sign_on(self, request: Envelope) -> bytes:
        auth_key, kek = sign_on_keys(TMK)
        assert request.verify(auth_key)
        session = os.urandom(16)
        if self.sign_on_forge is not None:
            forge, self.sign_on_forge = self.sign_on_forge, None
            return forge(request, kek, session)
        self.session = session
        answer = SignOnResponse(
            wrapped_key=wrap_session_key(kek, session),
            key_check=key_check_value(session),
            server_time=int(time.time()),
        )
        return _answer(request, answer, session)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for message in decoder.feed(data):
                    request = open_message(message)
                    self.requests.append((len(message), request))
                    if request.header.message_type == MessageType.SIGN_ON:
                        writer.write(self._sign_on(request))
                        continue
                    assert request.verify(self.session)
                    forge: Forge = honest
                    if self.times > 0:
                        self.times -= 1
                        forge = self.forge
                    writer.write(forge(request, self.session))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedHost, TerminalLink]]:
    host = ScriptedHost()
    server = await asyncio.start_server(host.serve, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    link = TerminalLink(TERMINAL, TMK, "127.0.0.1", port, timeout=10, retry_delay=0.01)
    try:
        yield host, link
    finally:
        await link.close()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


def _record(serial: int, *, qr: bool = False) -> OfflineRecord:
    now = dt.datetime.now(dt.UTC)
    if qr:  # the shape of a QR tap (§5.1 kind 3): a 191-byte payload, ~287 bytes encoded
        return OfflineRecord(
            kind=RecordKind.QR, terminal_serial=serial, app_serial=qr_account("6214" + "0" * 14 + "1"),
            card_counter=int(now.timestamp()) - 5, amount=200, txn_time=dt7(now), tac=bytes(4),
            blacklist_version=0, line="B1", qr_payload=os.urandom(191), sam_no=bytes(4),
            terminal_node=b"\x00\x00\x00\x01", qr_time=int(now.timestamp()),
        )  # fmt: skip
    return OfflineRecord(
        kind=RecordKind.PURCHASE, terminal_serial=serial, app_serial=bytes(10), issuer_id=bytes(8),
        card_counter=serial, amount=100, balance_before=10_000, txn_type=0x06, psam_terminal_no=bytes(6),
        txn_time=dt7(now), tac=bytes(4), key_version=1, blacklist_version=0, line="B1",
    )  # fmt: skip


def _batches(host: ScriptedHost) -> list[tuple[int, BatchUpload]]:
    """(message size, batch) of every batch upload the host received."""
    out = []
    for size, request in host.requests:
        if request.header.message_type == MessageType.BATCH_UPLOAD:
            body = request.body()
            assert isinstance(body, BatchUpload)
            out.append((size, body))
    return out


def _reader(link: TerminalLink, count: int, *, qr: bool = False) -> BusReader:
    reader = BusReader(link, SoftwarePsam(bytes(6)), TMK)
    for serial in range(1, count + 1):
        reader.queue[serial] = _record(serial, qr=qr)
    return reader


# --- forged and misdirected answers ---------------------------------------------------------------------


def zero_mac_success(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request), None)


def zero_mac_error_listing_records(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request, ResultCode.INTERNAL_ERROR), None)


def zero_mac_error(request: Envelope, key: bytes) -> bytes:
    return _answer(request, ErrorResponse(result=ResultCode.INTERNAL_ERROR), None)


def other_sequence(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request), key, sequence=request.header.sequence - 1)


def other_terminal(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request), key, terminal_id="BUS-T2")


def other_key(request: Envelope, key: bytes) -> bytes:
    return _answer(request, _all_accepted(request), os.urandom(16))


def unattributed_error(request: Envelope, key: bytes) -> bytes:
    """What the host answers to a frame it cannot parse (§3): ERROR, terminal id "-", sequence 0."""
    return _answer(request, ErrorResponse(result=ResultCode.MALFORMED_TLV), None, terminal_id="-", sequence=0)


@pytest.mark.parametrize(
    ("forge", "code", "untrusted"),
    [
        (zero_mac_success, ResultCode.BAD_MAC, True),
        (other_key, ResultCode.BAD_MAC, True),
        (other_sequence, ResultCode.BAD_FIELD_VALUE, True),
        (other_terminal, ResultCode.BAD_FIELD_VALUE, True),
        (unattributed_error, ResultCode.MALFORMED_TLV, True),
        (zero_mac_error_listing_records, ResultCode.INTERNAL_ERROR, False),
        (zero_mac_error, ResultCode.INTERNAL_ERROR, False),
    ],
)
async def test_the_reader_keeps_its_records_unless_its_own_answer_lists_them(
    scripted: tuple[ScriptedHost, TerminalLink], forge: Forge, code: ResultCode, untrusted: bool
) -> None:
    host, link = scripted
    host.forge = forge
    reader = _reader(link, 5)
    queued = dict(reader.queue)
    with pytest.raises(LinkError) as refused:
        await reader.upload()
    assert refused.value.code == code
    assert isinstance(refused.value, UntrustedAnswer) is untrusted
    assert reader.queue == queued and not reader.results  # nothing deleted, nothing counted
    # Sent again, the records are answered by the host (an untrusted answer closed the connection:
    # its stream may still hold the real answer; an error answer did not).
    assert await reader.upload() == 5
    assert not reader.queue and reader.counts["accepted"] == 5
    assert host.connections == (2 if untrusted else 1)


async def test_a_zero_mac_not_signed_on_only_makes_the_terminal_sign_on_again(
    scripted: tuple[ScriptedHost, TerminalLink],
) -> None:
    host, link = scripted

    def not_signed_on(request: Envelope, key: bytes) -> bytes:
        return _answer(request, _all_accepted(request, ResultCode.NOT_SIGNED_ON), None)

    host.forge = not_signed_on
    reader = _reader(link, 3)
    assert await reader.upload() == 3
    assert link.sign_ons == 2 and reader.counts["accepted"] == 3
    assert len(_batches(host)) == 2  # the same batch, sent again after the second sign-on


async def test_a_sign_on_answer_must_carry_the_new_session_mac(
    scripted: tuple[ScriptedHost, TerminalLink],
) -> None:
    host, link = scripted

    def zero_mac_key(request: Envelope, kek: bytes, session: bytes) -> bytes:
        answer = SignOnResponse(
            wrapped_key=wrap_session_key(kek, session), key_check=key_check_value(session)
        )
        return _answer(request, answer, None)

    host.sign_on_forge = zero_mac_key
    with pytest.raises(UntrustedAnswer) as refused:
        await link.sign_on()
    assert refused.value.code == ResultCode.BAD_MAC and link.session_key is None

    def other_sequence_key(request: Envelope, kek: bytes, session: bytes) -> bytes:
        answer = SignOnResponse(
            wrapped_key=wrap_session_key(kek, session), key_check=key_check_value(session)
        )
        return _answer(request, answer, session, sequence=request.header.sequence + 1)

    host.sign_on_forge = other_sequence_key
    with pytest.raises(UntrustedAnswer):
        await link.sign_on()
    assert link.session_key is None
    await link.sign_on()
    assert link.session_key == host.session and host.connections == 3


# --- batch size (§1: the frame limit wins) -----------------------------------------------------------------


async def test_qr_batches_are_split_to_fit_a_frame(scripted: tuple[ScriptedHost, TerminalLink]) -> None:
    host, link = scripted
    reader = _reader(link, 500, qr=True)
    reader.batch_size = 500
    assert await reader.upload() == 500
    assert not reader.queue and reader.counts["accepted"] == 500
    batches = _batches(host)
    sizes = [n for n, _ in batches]
    counts = [len(b.records) for _, b in batches]
    assert sum(counts) == 500 and max(sizes) <= MAX_FRAME_SIZE
    qr_size = len(reader._encoded(_record(501, qr=True)))  # ~287 bytes
    assert counts[0] < 250 and sizes[0] + qr_size > MAX_FRAME_SIZE  # full: one more would not fit
    # Small records are still batched by count: 500 purchases would fit one frame; batch_size is 200.
    host.requests.clear()
    reader = _reader(link, 500)
    assert await reader.upload() == 500
    assert [len(b.records) for _, b in _batches(host)] == [200, 200, 100]


async def test_qr_batches_fit_the_real_gateway(rig: Rig) -> None:
    registration = await rig.register("BUS-QR")
    link = rig.link(registration)
    reader = BusReader(link, SoftwarePsam(registration.psam_terminal_no), registration.tmk, batch_size=500)
    for serial in range(1, 501):
        reader.queue[serial] = _record(serial, qr=True)
    assert await reader.upload() == 500  # formerly: BATCH_TOO_LARGE before the first frame was sent
    assert not reader.queue and reader.counts["rejected"] == 500  # forged payloads, answered all the same
    assert reader.batch_number == 3


# --- the MACs the real host puts on its error answers (§3) -----------------------------------------------


async def _raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frame: bytes) -> Envelope:
    writer.write(frame)
    await writer.drain()
    decoder = FrameDecoder()
    while True:
        data = await asyncio.wait_for(reader.read(65536), 30)
        assert data, "the gateway closed the connection"
        if messages := decoder.feed(data):
            return open_message(messages[0])


def _sign_on(sequence: int, key: bytes, at: int | None = None) -> bytes:
    body = SignOn(nonce=os.urandom(16), software_version="test")
    at = int(time.time()) if at is None else at
    return seal_frame(body, terminal_id="BUS-MAC", sequence=sequence, time=at, key=key)


async def test_error_answers_are_maced_with_the_connections_session(rig: Rig) -> None:
    registration = await rig.register("BUS-MAC")
    auth_key, kek = sign_on_keys(registration.tmk)
    garbage = b"\x00\x05hello"
    reader, writer = await asyncio.open_connection(*rig.address)
    try:
        # No session on this connection: an all-zero MAC, on the refused sign-on too.
        answer = await _raw(reader, writer, garbage)
        assert answer.header.message_type == MessageType.ERROR and answer.unauthenticated
        assert (answer.header.terminal_id, answer.header.sequence) == ("-", 0)
        answer = await _raw(reader, writer, _sign_on(10, auth_key, at=1))  # CLOCK_DRIFT
        assert answer.header.message_type == MessageType.SIGN_ON_RESPONSE and answer.unauthenticated
        assert (answer.header.terminal_id, answer.header.sequence) == ("BUS-MAC", 10)
        # Signed on: every answer on this connection is MACed with the session key, errors included.
        answer = await _raw(reader, writer, _sign_on(11, auth_key))
        signed_on = answer.expect(SignOnResponse)
        assert signed_on.result == ResultCode.OK and signed_on.wrapped_key is not None
        session = unwrap_session_key(kek, signed_on.wrapped_key)
        assert answer.verify(session)
        answer = await _raw(reader, writer, garbage)
        assert answer.header.message_type == MessageType.ERROR and answer.verify(session)
        assert (answer.header.terminal_id, answer.header.sequence) == ("-", 0)
        answer = await _raw(reader, writer, _sign_on(12, auth_key, at=1))  # refused: the old session's MAC
        assert answer.expect(SignOnResponse).result == ResultCode.CLOCK_DRIFT and answer.verify(session)
        assert (answer.header.terminal_id, answer.header.sequence) == ("BUS-MAC", 12)
    finally:
        writer.close()


async def test_the_link_accepts_a_refused_sign_on_maced_with_its_session(rig: Rig) -> None:
    registration = await rig.register("BUS-OFF")
    link = rig.link(registration)
    await link.sign_on()
    await rig.host.registry.set_status("BUS-OFF", "disabled")
    with pytest.raises(LinkError) as refused:
        await link.sign_on()  # same connection: the host MACs the refusal with the current session
    assert refused.value.code == ResultCode.TERMINAL_DISABLED
    assert not isinstance(refused.value, UntrustedAnswer)


def test_batch_overhead_is_exact() -> None:
    """The reader's size budget (message minus records) matches a sealed batch, for a full body."""
    link = TerminalLink(TERMINAL, TMK, "127.0.0.1", 1)
    reader = _reader(link, 228, qr=True)
    records = reader._next_batch()
    head = BatchUpload(batch_number=2**32 - 1, record_count=len(records), records=tuple(records))
    sealed = seal(head, terminal_id=TERMINAL, sequence=2**32 - 1, time=2**32 - 1, key=None)
    assert len(sealed) == reader._batch_overhead() + sum(len(reader._encoded(r)) for r in records)
    assert len(sealed) <= MAX_FRAME_SIZE
