"""The terminal-side blacklist: about 8 bytes per listed card, for readers and ``mock_terminals``.

Each list (card numbers, device authorisation ids) is a sorted ``array('Q')`` searched with
``bisect``: 1 million cards take 8 MB, against roughly 60 MB for a Python ``set`` of ints (see
``bench/card_issue.py``). Deltas go into two small overlay sets (added, removed) that are merged
into the arrays when they pass ``merge_threshold``, so applying a small delta never rewrites 8 MB.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from card.blacklist.format import BlacklistDelta, decode_delta

__all__ = ["CompactBlacklist", "SortedU64Set"]


def _sorted_array(values: Iterable[int]) -> array[int]:
    return array("Q", sorted(set(values)))


def _from_packed(packed: bytes) -> array[int]:
    values = array("Q")
    values.frombytes(packed)
    if sys.byteorder == "little":
        values.byteswap()  # the wire form is big-endian
    return values


class SortedU64Set:
    __slots__ = ("_added", "_base", "_removed", "merge_threshold")

    def __init__(self, values: array[int] | None = None, *, merge_threshold: int = 4096) -> None:
        self._base: array[int] = values if values is not None else array("Q")
        self._added: set[int] = set()
        self._removed: set[int] = set()
        self.merge_threshold = merge_threshold

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        if value in self._added:
            return True
        if value in self._removed:
            return False
        base = self._base
        i = bisect_left(base, value)
        return i < len(base) and base[i] == value

    def __len__(self) -> int:
        in_base = sum(1 for v in self._added if not self._in_base(v))
        return len(self._base) + in_base - len(self._removed)

    def _in_base(self, value: int) -> bool:
        i = bisect_left(self._base, value)
        return i < len(self._base) and self._base[i] == value

    def replace(self, packed: bytes) -> None:
        self._base = _from_packed(packed)
        self._added.clear()
        self._removed.clear()

    def update(self, adds: Iterable[int], removes: Iterable[int]) -> None:
        for value in removes:
            self._added.discard(value)
            if self._in_base(value):
                self._removed.add(value)
        for value in adds:
            self._removed.discard(value)
            if not self._in_base(value):
                self._added.add(value)
        if len(self._added) + len(self._removed) > self.merge_threshold:
            self.merge()

    def merge(self) -> None:
        if not self._added and not self._removed:
            return
        removed = self._removed
        kept = (v for v in self._base if v not in removed) if removed else iter(self._base)
        self._base = _sorted_array([*kept, *self._added]) if self._added else array("Q", kept)
        self._added = set()
        self._removed = set()

    @property
    def nbytes(self) -> int:
        """Memory held by the values: the array's buffer plus the overlays (set slots and ints)."""
        overlay = sum(sys.getsizeof(s) for s in (self._added, self._removed))
        overlay += 32 * (len(self._added) + len(self._removed))
        return self._base.buffer_info()[1] * self._base.itemsize + overlay


class CompactBlacklist:
    """A terminal's copy of the list: apply verified deltas in order, ask about a card or an authorisation."""

    def __init__(self, *, merge_threshold: int = 4096) -> None:
        self.version = 0
        self.cards = SortedU64Set(merge_threshold=merge_threshold)
        self.authorisations = SortedU64Set(merge_threshold=merge_threshold)

    def apply(self, delta: BlacklistDelta | bytes) -> None:
        """Apply a snapshot or the next delta (its ``from_version`` must be this list's version)."""
        if isinstance(delta, bytes | bytearray | memoryview):
            delta = decode_delta(bytes(delta))
        if delta.full:
            self.cards.replace(delta.card_adds)
            self.authorisations.replace(delta.auth_adds)
        else:
            if delta.from_version != self.version:
                raise ValueError(f"delta from version {delta.from_version} does not follow {self.version}")
            self.cards.update(_from_packed(delta.card_adds), _from_packed(delta.card_removes))
            self.authorisations.update(_from_packed(delta.auth_adds), _from_packed(delta.auth_removes))
        self.version = delta.to_version

    def card_listed(self, card_number: str | int) -> bool:
        """The ``blacklist`` predicate of ``card.qr.OfflineVerifier``."""
        try:
            return int(card_number) in self.cards
        except ValueError:
            return False

    def authorisation_listed(self, authorisation_id: int) -> bool:
        return authorisation_id in self.authorisations

    @property
    def nbytes(self) -> int:
        return self.cards.nbytes + self.authorisations.nbytes
