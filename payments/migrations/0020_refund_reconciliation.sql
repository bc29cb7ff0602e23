-- Reconciliation compares the channels' refund lines too (payments.clearing.reconcile), not only
-- their payments: a refund the channel paid back while our records show it failed, missing or
-- for another amount is as much a suspense item as a payment would be.
--
-- A suspense item is about a payment (refund_no NULL) or about one refund of that top-up order
-- (refund_no set): the key becomes (day, channel, order number, refund number), so that a payment
-- and each of its refunds have their own item and a re-run still adds nothing. platform_state is
-- the state of our refund when the item was opened (failed, requested, ...; NULL when we have no
-- such refund), so that whoever resolves the item sees why the channel's line did not match.
ALTER TABLE payments.suspense_items
    ADD COLUMN refund_no text,
    ADD COLUMN platform_state text,
    DROP CONSTRAINT suspense_items_business_date_channel_order_no_key,
    ADD CONSTRAINT suspense_items_line_key UNIQUE NULLS NOT DISTINCT (business_date, channel, order_no, refund_no);

-- The refunds the channel and we agree on, and ours still awaiting an outcome (not a mismatch on
-- the day: the channel does not list them either). The mismatch counts cover payments and refunds.
ALTER TABLE payments.reconciliations
    ADD COLUMN refunds_matched integer NOT NULL DEFAULT 0,
    ADD COLUMN refunds_pending integer NOT NULL DEFAULT 0;

-- Reconciliation reads a day's refunds by when we asked the channel (created_at).
CREATE INDEX refunds_created_idx ON payments.refunds (created_at);
