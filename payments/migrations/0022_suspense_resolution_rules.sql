-- A resolved line reopens when the channel's statement changes it (payments.clearing.reconcile).

-- supersedes: a re-run of a day's reconciliation (a re-issued statement) found a different
-- difference on a line whose item was resolved; the new item, open, names the resolved one it
-- replaces, which stays as it was resolved. An item is superseded once at most (UNIQUE).
ALTER TABLE payments.suspense_items
    ADD COLUMN supersedes     uuid UNIQUE REFERENCES payments.suspense_items (id),
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
