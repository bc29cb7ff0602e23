"""Migration 0120 on a database where the suspense queue was touched by hand: 0100 gave it
``resolved_at`` and ``resolution`` and nothing wrote them, so any resolved row was a person's
doing. 0120 must apply there (a failed deploy otherwise) and make such rows write-offs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The database as 0100-0111 left it.
_UNDO_0120 = """
DROP INDEX card.terminal_suspense_resolved_idx;
ALTER TABLE card.terminal_suspense DROP CONSTRAINT terminal_suspense_resolution,
    DROP COLUMN decision, DROP COLUMN resolved_by;
"""


async def test_0120_applies_over_entries_resolved_by_hand(db: Any, repo_root: Path) -> None:
    await db.execute(_UNDO_0120)
    await db.execute(
        "INSERT INTO card.terminal_suspense (terminal_id, terminal_serial, reason, detail, state,"
        " resolved_at, resolution) VALUES"
        " ('BUS-1', 7, 5, 'dated in the future', 'resolved', now(), 'written off by hand, ticket 4411'),"
        " ('BUS-1', 8, 5, 'dated in the future', 'resolved', NULL, NULL),"
        " ('BUS-1', 9, 1, 'bad TAC', 'open', NULL, 'looked at it')"
    )
    async with db.transaction():
        await db.execute((repo_root / "card/migrations/0120_suspense_resolution.sql").read_text())
    rows = await db.fetch(
        "SELECT terminal_serial, state, decision, resolved_by, resolved_at IS NOT NULL AS dated, resolution"
        " FROM card.terminal_suspense ORDER BY terminal_serial"
    )
    assert [tuple(r) for r in rows] == [
        (7, "resolved", "reject", "before-migration-0120", True, "written off by hand, ticket 4411"),
        (8, "resolved", "reject", "before-migration-0120", True, "resolved by hand before migration 0120"),
        (9, "open", None, None, False, None),
    ]
