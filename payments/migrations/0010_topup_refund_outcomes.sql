-- Top-up refunds whose outcome at the channel is not known yet.

-- 'processing': the channel was asked and has not given a definite answer (a timeout, a garbled
-- reply, WeChat's PROCESSING). Like 'requested' (reserved, the channel not asked yet, or the
-- process stopped while asking) the money stays reserved until the channel says refunded
-- (posted) or refused (voided); the top-up sweep asks again (payments.topup.refund_outcome).
ALTER TABLE payments.refunds DROP CONSTRAINT refunds_state_check;
ALTER TABLE payments.refunds ADD CONSTRAINT refunds_state_check
    CHECK (state IN ('requested', 'processing', 'succeeded', 'failed'));
ALTER TABLE payments.refunds
    ADD COLUMN attempts    integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- channel calls
    ADD COLUMN checked_at  timestamptz;                                          -- the last one
CREATE INDEX refunds_open_idx ON payments.refunds (created_at) WHERE state IN ('requested', 'processing');
