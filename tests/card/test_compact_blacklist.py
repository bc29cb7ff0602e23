"""The terminal-side blacklist against a plain set, and the delta wire form round trip."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from card.blacklist import BlacklistDelta, CompactBlacklist, decode_delta, encode_delta

U63 = st.integers(min_value=0, max_value=2**63 - 1)
T = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def pack(values: set[int]) -> bytes:
    ordered = sorted(values)
    return struct.pack(f">{len(ordered)}Q", *ordered)


def delta(version: int, adds: set[int], removes: set[int], *, full: bool = False) -> BlacklistDelta:
    return BlacklistDelta(full, 0 if full else version - 1, version, T, pack(adds), pack(removes), b"", b"")


@settings(max_examples=60, deadline=None)
@given(
    start=st.sets(U63, max_size=200),
    steps=st.lists(st.tuples(st.sets(U63, max_size=20), st.sets(U63, max_size=20)), max_size=12),
    threshold=st.integers(min_value=1, max_value=64),
)
def test_matches_a_set(start: set[int], steps: list[tuple[set[int], set[int]]], threshold: int) -> None:
    terminal = CompactBlacklist(merge_threshold=threshold)
    terminal.apply(encode_delta(delta(1, start, set(), full=True)))
    model = set(start)
    for version, (raw_adds, removes) in enumerate(steps, start=2):
        adds = raw_adds - removes
        terminal.apply(encode_delta(delta(version, adds, removes)))
        model = (model - removes) | adds
        assert terminal.version == version
    assert len(terminal.cards) == len(model)
    for value in model | {v for a, r in steps for v in a | r} | start:
        assert (value in terminal.cards) == (value in model)
    terminal.cards.merge()
    assert all(v in terminal.cards for v in model)


def test_out_of_order_delta_and_malformed_bytes_are_refused() -> None:
    terminal = CompactBlacklist()
    with pytest.raises(ValueError, match="does not follow"):
        terminal.apply(delta(5, {1}, set()))
    encoded = encode_delta(delta(1, {1, 2}, set(), full=True))
    assert decode_delta(encoded).values(decode_delta(encoded).card_adds) == [1, 2]
    for broken in (encoded[:-1], encoded[:10], b"\x02" + encoded[1:]):
        with pytest.raises(ValueError):
            decode_delta(broken)
    assert not terminal.card_listed("not a number")
