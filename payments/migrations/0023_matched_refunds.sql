-- The refunds each channel's statements were matched against, once (payments.clearing.reconcile).
-- A refund the channel lists is matched whatever day we asked for it, so without this a channel
-- paying one refund back twice, on two days' statements, was matched on both and opened no
-- suspense item. The first business day whose reconciliation matched a refund claims it; the
-- same refund listed on another day is channel-only (money returned twice). A re-run of the
-- claiming day matches it again.
CREATE TABLE payments.matched_refunds (
    channel        text NOT NULL,
    refund_no      text NOT NULL,
    business_date  date NOT NULL,
    PRIMARY KEY (channel, refund_no)
);
