-- Each fact explains one suspense item at most, and a resolved line reopens when the channel's
-- statement changes it (payments.clearing.suspense, payments.clearing.reconcile).

-- counterpart_id: a payment dated on either side of midnight leaves a platform-only item one day and
-- a channel-only item the other; timing_difference resolves the two together, each naming the
-- other. An item is the counterpart of one item at most (UNIQUE), and only of a timing difference.
-- supersedes: a re-run of a day's reconciliation (a re-issued statement) found a different
-- difference on a line whose item was resolved; the new item, open, names the resolved one it
-- replaces, which stays as it was resolved. An item is superseded once at most (UNIQUE).
ALTER TABLE payments.suspense_items
    ADD COLUMN counterpart_id uuid UNIQUE REFERENCES payments.suspense_items (id),
    ADD COLUMN supersedes     uuid UNIQUE REFERENCES payments.suspense_items (id),
    ADD CONSTRAINT suspense_items_counterpart_timing
        CHECK (counterpart_id IS NULL OR (resolution = 'timing_difference' AND counterpart_id <> id)),
    ADD CONSTRAINT suspense_items_supersedes_other CHECK (supersedes <> id),
    -- A line (day, channel, order number, refund number) now has a history: replaced by the two
    -- indexes below.
    DROP CONSTRAINT suspense_items_line_key;

-- One open item per line, so that a re-run finding the same difference adds nothing ...
CREATE UNIQUE INDEX suspense_items_open_line_key
    ON payments.suspense_items (business_date, channel, order_no, refund_no) NULLS NOT DISTINCT
    WHERE state = 'open';
-- ... and one first item per line: every later one supersedes the line's latest.
CREATE UNIQUE INDEX suspense_items_first_line_key
    ON payments.suspense_items (business_date, channel, order_no, refund_no) NULLS NOT DISTINCT
    WHERE supersedes IS NULL;

-- A fact explains one of the channel's lines at most. Our order's payment (booked once) explains
-- one channel-only payment: resolved credited_late, or paired with our platform-only item as a
-- timing_difference; one refund's success one channel-only refund (refund_settled). The checks in
-- payments.clearing.suspense_rules refuse a second; this index, two resolving at once.
CREATE UNIQUE INDEX suspense_items_explained_once
    ON payments.suspense_items (channel, order_no, refund_no) NULLS NOT DISTINCT
    WHERE resolution IN ('credited_late', 'refund_settled')
       OR (resolution = 'timing_difference' AND kind = 'channel_only');
