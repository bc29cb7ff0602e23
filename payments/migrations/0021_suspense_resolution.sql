-- Suspense items are resolved by people (payments.clearing.suspense): who, when, how and why.
--
-- resolution is one of the closing reasons the module documents; note is the resolver's account of
-- what they found (required), reference the document it rests on (a channel's refund or correction
-- number; required by some resolutions). An item moves from open to resolved once, by a
-- conditional UPDATE ... WHERE state = 'open', and is never changed afterwards.
ALTER TABLE payments.suspense_items
    ADD COLUMN resolved_at  timestamptz,
    ADD COLUMN resolved_by  text,
    ADD COLUMN resolution   text CHECK (resolution IN ('credited_late', 'refund_settled', 'timing_difference',
                                        'channel_refunded', 'channel_corrected', 'written_off')),
    ADD COLUMN note         text CHECK (length(note) BETWEEN 1 AND 500),
    ADD COLUMN reference    text CHECK (length(reference) BETWEEN 1 AND 100),
    ADD CONSTRAINT suspense_items_open_unresolved
        CHECK (state = 'resolved' OR (resolved_at IS NULL AND resolution IS NULL)),
    -- NOT VALID: an item someone marked resolved by hand before this migration has no resolution;
    -- every item resolved from now on must carry one.
    ADD CONSTRAINT suspense_items_resolved_complete
        CHECK (state = 'open' OR (resolved_at IS NOT NULL AND resolved_by IS NOT NULL
                                  AND resolution IS NOT NULL AND note IS NOT NULL)) NOT VALID;

-- The back office's queue: open items by business date.
CREATE INDEX suspense_items_open_idx ON payments.suspense_items (business_date, created_at, id)
    WHERE state = 'open';

-- The refunds a reconciliation matched although we asked for them on an earlier day (the channel
-- dated them later, e.g. asked just before midnight): the evidence that the earlier day's
-- platform-only item for such a refund was a timing difference, since matched lines leave no item.
ALTER TABLE payments.reconciliations
    ADD COLUMN refunds_matched_late text[] NOT NULL DEFAULT '{}';
