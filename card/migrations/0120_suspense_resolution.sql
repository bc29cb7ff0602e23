-- The suspense queue resolved by operators (docs/terminal-protocol.md §5.4,
-- card.terminal.host.suspense): each open entry is accepted (the held card debit posted after all)
-- or rejected (written off), once, with the operator's note in ``resolution``.
-- ``decision`` and ``resolved_by`` (the operator's account id) complete ``resolved_at`` and
-- ``resolution`` of 0100; a row is open with none of the four, or resolved with all of them.
ALTER TABLE card.terminal_suspense
    ADD COLUMN decision    text CHECK (decision IN ('accept', 'reject')),
    ADD COLUMN resolved_by text;
-- Nothing wrote resolved_at or resolution before this file, so a resolved row was resolved by hand
-- in the database: it is a write-off (its record stayed suspended, nothing was charged), by
-- whoever ran that. Open rows keep no stray resolution. Then every row satisfies the rule below.
UPDATE card.terminal_suspense
    SET decision = 'reject', resolved_by = 'before-migration-0120',
        resolved_at = coalesce(resolved_at, created_at),
        resolution = coalesce(nullif(resolution, ''), 'resolved by hand before migration 0120')
    WHERE state = 'resolved';
UPDATE card.terminal_suspense SET resolved_at = NULL, resolution = NULL
    WHERE state = 'open' AND (resolved_at IS NOT NULL OR resolution IS NOT NULL);
ALTER TABLE card.terminal_suspense
    ADD CONSTRAINT terminal_suspense_resolution CHECK (
        CASE state
            WHEN 'open' THEN resolved_at IS NULL AND decision IS NULL AND resolved_by IS NULL
                AND resolution IS NULL
            ELSE resolved_at IS NOT NULL AND decision IS NOT NULL AND resolved_by IS NOT NULL
                AND resolution IS NOT NULL
        END
    );
-- The console and the API list the latest resolutions first.
CREATE INDEX terminal_suspense_resolved_idx ON card.terminal_suspense (resolved_at)
    WHERE state = 'resolved';
