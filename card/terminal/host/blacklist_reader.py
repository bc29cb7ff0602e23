"""The host's read of the card blacklist (``card.blacklist_head/entries/changes``): the upload-time
look-up of listed cards and the paged BLACKLIST download (docs/terminal-protocol.md §8).

One of the neighbours ``card.terminal.host.ports`` describes, in a module of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from card._db import Connection

__all__ = ["BlacklistDelta", "BlacklistReader", "UnknownListVersion"]


@dataclass(frozen=True, slots=True)
class BlacklistDelta:
    """One page of the list a terminal asked for (docs/terminal-protocol.md §8, BLACKLIST).

    ``version`` is the version the whole list brings the terminal to (the same on every page);
    ``after`` is where the next page starts, ``None`` on the last page.
    """

    version: int
    full: bool
    added: list[str]
    removed: list[str]
    after: int | None = None


class UnknownListVersion(ValueError):
    """A continuation asked for a list version above this host's head: not a list it issued."""


class BlacklistReader:
    """Cards (kind 1) on ``card.blacklist_*``; device authorisations (kind 2) stay with card.qr readers."""

    async def head(self, db: Connection) -> int:
        version = await db.fetchval("SELECT version FROM card.blacklist_head")
        return int(version or 0)

    async def listed(self, db: Connection, numbers: Iterable[str]) -> dict[str, int]:
        """Card number → the version that listed it, for the listed ones."""
        # Card numbers are 19 digits by default (card.settings) and start 1-8, so they fit a bigint,
        # as card.cards.card_number_int and the list's values do; anything else cannot be listed.
        values = [v for n in set(numbers) if n.isdigit() and len(n) <= 19 for v in (int(n),) if v < 1 << 63]
        if not values:
            return {}
        rows = await db.fetch(
            "SELECT value, version FROM card.blacklist_entries WHERE kind = 1 AND value = ANY($1::bigint[])",
            values,
        )
        return {str(r["value"]): int(r["version"]) for r in rows}

    async def delta(
        self,
        db: Connection,
        since: int,
        *,
        limit: int,
        list_version: int | None = None,
        after: int | None = None,
        max_changes: int = 50_000,
    ) -> BlacklistDelta:
        """One page of at most ``limit`` card numbers of the list from ``since``: the first page
        when ``list_version`` is None (the list is then the one up to the head), else the page
        after card number ``after`` of the list up to ``list_version``.

        The list is the changes in (since, list_version], or the whole list when the terminal has
        none (0), has a version this host never issued, or is more than ``max_changes`` changes
        behind. That choice depends only on (since, list_version), and the changes up to a version
        that has been read as the head are never rewritten, so every page of one list makes it the
        same way. A delta page is exact at ``list_version``;
        a full-list page is read from the current entries, so it may already show changes made
        after ``list_version``: the terminal holds ``list_version`` when complete, and the delta
        since then names every card changed after it with its final state (§8).
        """
        head = await self.head(db)
        if list_version is None:
            list_version, after = head, None
        elif list_version > head:
            # Not a version of this host's list (another platform, a restored database): the
            # terminal discards the pages it has and starts again (§8).
            raise UnknownListVersion(f"list version {list_version} is above the head {head}")
        if since == list_version:
            return BlacklistDelta(list_version, False, [], [])
        full = since == 0 or since > list_version
        if not full:
            # Bounded: past max_changes the answer is the full list whatever the exact count.
            changes = await db.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM card.blacklist_changes WHERE kind = 1 "
                "AND version > $1 AND version <= $2 LIMIT $3) c",
                since,
                list_version,
                max_changes + 1,
            )
            full = int(changes or 0) > max_changes
        start = -1 if after is None else after  # values are card numbers, never negative
        # One row more than the page holds tells whether another page follows, so the last page is
        # never an empty answer of its own.
        if full:
            rows = await db.fetch(
                "SELECT value, 'a' AS action FROM card.blacklist_entries WHERE kind = 1 AND value > $1 "
                "ORDER BY value LIMIT $2",
                start,
                limit + 1,
            )
        else:
            rows = await db.fetch(
                # The last change of each card in (since, list_version] is its state at
                # list_version (an add then a remove is a remove). ``action`` is PostgreSQL's
                # one-byte "char" (asyncpg answers bytes): compare it as text.
                "SELECT DISTINCT ON (value) value, action::text AS action FROM card.blacklist_changes "
                "WHERE kind = 1 AND version > $1 AND version <= $2 AND value > $3 "
                "ORDER BY value, version DESC LIMIT $4",
                since,
                list_version,
                start,
                limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        added = [str(r["value"]) for r in rows if r["action"] == "a"]
        removed = [str(r["value"]) for r in rows if r["action"] == "r"]
        return BlacklistDelta(list_version, full, added, removed, int(rows[-1]["value"]) if more else None)
