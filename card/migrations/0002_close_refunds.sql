-- Closing a card gives its e-purse balance back only once the settlement window for offline taps
-- (card settings, settlement_window_days) has passed, as the balance move after a reissue does:
-- taps made before the close and uploaded meanwhile debit the purse first, so the refund is the
-- balance less those taps. `citizen card settle` runs the refunds that are due.
CREATE TABLE card.close_refunds (
    card_id     uuid        PRIMARY KEY REFERENCES card.cards (id),
    due_at      timestamptz NOT NULL,
    -- 'running': claimed by a runner at claimed_at (the refund calls the channels outside any
    -- transaction); a claim older than the lease is taken again (the refund is idempotent).
    status      text        NOT NULL CHECK (status IN ('scheduled', 'running', 'done')),
    claimed_at  timestamptz,
    balance     bigint,
    refunded    bigint,
    unrefunded  bigint,
    done_at     timestamptz
);
CREATE INDEX close_refunds_due_idx ON card.close_refunds (due_at) WHERE status <> 'done';
