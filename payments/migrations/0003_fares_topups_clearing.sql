-- Fares, top-up orders through the payment channels, idempotency keys, clearing and
-- settlement, reconciliation and suspense items.

-- Versioned fare tables: the canonical JSON of each version, never changed once published.
CREATE TABLE payments.fare_tables (
    operator        text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    body            bytea       NOT NULL,
    digest          bytea       NOT NULL CHECK (length(digest) = 32),
    effective_from  timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (operator, version),
    UNIQUE (operator, digest)
);

-- QR riders' running totals per operator, for capping at the moment a ride is charged.
CREATE TABLE payments.rider_totals (
    card_id       text        NOT NULL,
    operator      text        NOT NULL,
    day           date        NOT NULL,
    day_total     bigint      NOT NULL CHECK (day_total >= 0),
    week          date        NOT NULL,
    week_total    bigint      NOT NULL CHECK (week_total >= 0),
    last_paid_at  timestamptz,
    PRIMARY KEY (card_id, operator)
);

-- Top-up orders (聚合支付). order_no is the channel's out_trade_no. Every state change is a
-- conditional UPDATE on the expected state (payments.topup.orders).
CREATE TABLE payments.topup_orders (
    id                 uuid        PRIMARY KEY,
    order_no           text        NOT NULL UNIQUE,
    person_id          uuid        NOT NULL,
    card_id            uuid        NOT NULL,
    epurse_account_id  uuid        NOT NULL,
    physical           boolean     NOT NULL,
    amount             bigint      NOT NULL CHECK (amount > 0),
    channel            text        CHECK (channel IN ('unionpay', 'alipay', 'wechatpay')),
    state              text        NOT NULL CHECK (state IN ('created', 'paying', 'paid', 'awaiting_load',
                                   'loading', 'credited', 'closed', 'failed', 'refunded')),
    channel_trade_no   text,
    pay_url            text,
    refunded_amount    bigint      NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    failure            text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    paid_at            timestamptz,
    credited_at        timestamptz,
    CHECK (refunded_amount <= amount)
);
CREATE INDEX topup_orders_person_idx ON payments.topup_orders (person_id, created_at DESC);
CREATE INDEX topup_orders_open_idx ON payments.topup_orders (created_at) WHERE state IN ('created', 'paying');
CREATE INDEX topup_orders_held_idx ON payments.topup_orders (card_id) WHERE state IN ('awaiting_load', 'loading');
CREATE INDEX topup_orders_paid_idx ON payments.topup_orders (channel, paid_at);

CREATE TABLE payments.topup_events (
    id          bigserial   PRIMARY KEY,
    order_id    uuid        NOT NULL REFERENCES payments.topup_orders (id),
    from_state  text,
    to_state    text        NOT NULL,
    cause       text        NOT NULL,
    at          timestamptz NOT NULL,
    details     jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX topup_events_order_idx ON payments.topup_events (order_id, id);

-- Every notification received from a channel, trusted or not (refused ones are evidence).
CREATE TABLE payments.channel_notifications (
    id           bigserial   PRIMARY KEY,
    channel      text        NOT NULL,
    order_no     text,
    verified     boolean     NOT NULL,
    outcome      text        NOT NULL,
    detail       text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_notifications_order_idx ON payments.channel_notifications (order_no);

-- Idempotency-Key of money-moving POSTs, scoped per caller (brandur's phases, simplified).
CREATE TABLE payments.idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL CHECK (length(key) BETWEEN 8 AND 255),
    operation        text        NOT NULL,
    request_hash     bytea       NOT NULL,
    locked_at        timestamptz,
    response_status  integer,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_idx ON payments.idempotency_keys (created_at);

CREATE TABLE payments.refunds (
    id            uuid        PRIMARY KEY,
    refund_no     text        NOT NULL UNIQUE,
    order_id      uuid        NOT NULL REFERENCES payments.topup_orders (id),
    amount        bigint      NOT NULL CHECK (amount > 0),
    reason        text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('requested', 'succeeded', 'failed')),
    transfer_id   uuid        NOT NULL,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz
);
CREATE INDEX refunds_order_idx ON payments.refunds (order_id);

-- Clearing runs: a run for business date D covers the taps recorded up to as_of whose service
-- day is at most D, minus those an earlier run covered (payments.clearing.settle).
CREATE TABLE payments.settlement_runs (
    business_date  date        PRIMARY KEY,
    as_of          timestamptz NOT NULL,
    previous_date  date,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments.settlements (
    business_date    date        NOT NULL REFERENCES payments.settlement_runs (business_date),
    operator         text        NOT NULL,
    taps             bigint      NOT NULL,
    gross            bigint      NOT NULL,
    late_taps        bigint      NOT NULL,
    concession_taps  bigint      NOT NULL,
    rebates          bigint      NOT NULL,
    fees             bigint      NOT NULL,
    net              bigint      NOT NULL,
    transfer_id      uuid,
    file_name        text        NOT NULL,
    file             bytea       NOT NULL,
    terminal_report  jsonb       NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (business_date, operator)
);

-- Reconciliation against the channels' statements, and the suspense items mismatches open.
CREATE TABLE payments.reconciliations (
    business_date  date        NOT NULL,
    channel        text        NOT NULL,
    matched        integer     NOT NULL,
    channel_only   integer     NOT NULL,
    platform_only  integer     NOT NULL,
    mismatched     integer     NOT NULL,
    report         jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_date, channel)
);

CREATE TABLE payments.suspense_items (
    id               uuid        PRIMARY KEY,
    business_date    date        NOT NULL,
    channel          text        NOT NULL,
    order_no         text        NOT NULL,
    kind             text        NOT NULL CHECK (kind IN ('channel_only', 'platform_only', 'amount_mismatch')),
    platform_amount  bigint,
    channel_amount   bigint,
    transfer_id      uuid,
    state            text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (business_date, channel, order_no)
);
