"""Bad input: random and mutated frames always get an error answer or a closed connection."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from card.terminal.frame import FrameDecoder
from card.terminal.host.service import Link
from card.terminal.messages import ErrorResponse, Heartbeat, HeartbeatResponse, open_message, seal, seal_frame
from card.terminal.spec import ResultCode
from tests.terminal.conftest import Rig

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# Per rig (hypothesis runs every example on the same function-scoped rig): a signed-on terminal's
# id, session key and next unused sequence number.
_SIGNED_ON: dict[int, tuple[str, bytes, int]] = {}


async def _signed_on(rig: Rig) -> tuple[str, bytes, int]:
    """A terminal signed on for real, so that a mutated message reaches the MAC check (an unknown
    terminal would be refused before it), and a control: its own message unmutated is accepted."""
    found = _SIGNED_ON.get(id(rig))
    if found is None:
        registration = await rig.register("BUS-F")
        link = rig.link(registration)
        await link.sign_on()
        assert link.session_key is not None
        control = seal(Heartbeat(), terminal_id="BUS-F", sequence=link.sequence + 1, time=int(time.time()),
                       key=link.session_key)  # fmt: skip
        assert _result(await rig.gateway.answer(Link(), control)) == ResultCode.OK
        found = _SIGNED_ON[id(rig)] = ("BUS-F", link.session_key, link.sequence + 2)
    return found


def _result(frame: bytes) -> int:
    envelope = open_message(frame[2:])
    body = envelope.body()
    assert isinstance(body, ErrorResponse | HeartbeatResponse) or envelope.header.message_type > 0x80
    return int(getattr(body, "result", 0))


@_FUZZ
@given(data=st.binary(max_size=300))
async def test_random_messages_get_an_error(rig: Rig, data: bytes) -> None:
    answer = await rig.gateway.answer(Link(), data)
    assert _result(answer) != ResultCode.OK


@_FUZZ
@given(st.data())
async def test_mutated_messages_never_pass_or_crash(rig: Rig, data: st.DataObject) -> None:
    terminal_id, key, sequence = await _signed_on(rig)
    # Unused sequence: unmutated, this message would be accepted (as the control was).
    original = seal(Heartbeat(), terminal_id=terminal_id, sequence=sequence, time=int(time.time()), key=key)
    message = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(message) - 1)))
        if op == "flip" and message:
            message[at] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del message[at : at + data.draw(st.integers(1, 8))]
        else:
            message[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    assume(bytes(message) != original)  # two flips of one byte can undo each other
    answer = await rig.gateway.answer(Link(), bytes(message))
    assert _result(answer) != ResultCode.OK  # never accepted: the MAC covers every byte but its own


async def _exchange(rig: Rig, payload: bytes) -> list[bytes] | None:
    reader, writer = await asyncio.open_connection(*rig.address)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        decoder, frames = FrameDecoder(), []
        while data := await asyncio.wait_for(reader.read(65536), 30):
            frames += decoder.feed(data)
        return frames
    finally:
        writer.close()


async def test_stream_garbage_over_tcp(rig: Rig) -> None:
    oversized = (0xFFFF).to_bytes(2, "big") + b"\x00" * 10
    frames = await _exchange(rig, b"\x00\x05hello" + b"\x00\x00" + oversized)
    assert frames is not None
    results = [_result(len(f).to_bytes(2, "big") + f) for f in frames]
    assert results[0] == ResultCode.MALFORMED_TLV
    assert results[-1] in (ResultCode.MALFORMED_TLV, ResultCode.FRAME_TOO_LARGE)


async def test_not_signed_on_and_disabled(rig: Rig) -> None:
    registration = await rig.register("BUS-N")
    frame = seal_frame(Heartbeat(), terminal_id="BUS-N", sequence=5, time=1, key=b"x" * 16)
    frames = await _exchange(rig, frame)
    assert frames and _result(len(frames[0]).to_bytes(2, "big") + frames[0]) == ResultCode.NOT_SIGNED_ON
    link = rig.link(registration)
    await link.sign_on()
    answer = await link.request(Heartbeat(), HeartbeatResponse)
    assert answer.result == ResultCode.OK and answer.server_time
    await rig.host.registry.set_status("BUS-N", "disabled")
    await link.close()
    link.session_key = None
    from mock_terminals.link import LinkError

    with pytest.raises(LinkError) as refused:
        await link.sign_on()
    assert refused.value.code == ResultCode.TERMINAL_DISABLED
