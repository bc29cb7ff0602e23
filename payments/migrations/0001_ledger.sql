-- The ledger: TigerBeetle's data model (accounts, immutable transfers, two-phase transfers) in
-- PostgreSQL. Amounts are bigint fen. Balances live on the account row and are changed only by
-- payments.ledger (one aggregated UPDATE per batch); `citizen ledger check` recomputes them.
CREATE SCHEMA payments;

CREATE TABLE payments.accounts (
    id               uuid        PRIMARY KEY,
    ledger           integer     NOT NULL CHECK (ledger > 0),          -- 156: CNY (ISO 4217)
    code             smallint    NOT NULL CHECK (code > 0),            -- AccountCode: kind of account
    flags            integer     NOT NULL DEFAULT 0,                   -- AccountFlags bit set
    overdraft_limit  bigint      NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    debits_pending   bigint      NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted    bigint      NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending  bigint      NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted   bigint      NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    user_data_128    uuid,
    user_data_64     bigint,
    user_data_32     integer,
    reference        text        UNIQUE,                               -- e.g. 'operator:metro-1:payable'
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Immutable: never updated or deleted (trigger below). One row = one debit and one credit of
-- the same amount. Failed transfers are not here (see failed_transfers).
CREATE TABLE payments.transfers (
    id                 uuid        PRIMARY KEY,
    debit_account_id   uuid        NOT NULL,
    credit_account_id  uuid        NOT NULL,
    amount             bigint      NOT NULL CHECK (amount > 0),
    pending_id         uuid,
    ledger             integer     NOT NULL,
    code               smallint    NOT NULL CHECK (code > 0),
    flags              smallint    NOT NULL,                           -- TransferFlags bit set
    timeout            integer     NOT NULL DEFAULT 0 CHECK (timeout >= 0),  -- seconds, pending only
    user_data_128      uuid,
    user_data_64       bigint,
    user_data_32       integer,
    reference          text,
    "timestamp"        timestamptz NOT NULL,
    CHECK (debit_account_id <> credit_account_id)
);
CREATE INDEX transfers_debit_idx ON payments.transfers (debit_account_id);
CREATE INDEX transfers_credit_idx ON payments.transfers (credit_account_id);
-- A pending transfer resolves at most once (invariant 1.9.4), enforced by the database too.
CREATE UNIQUE INDEX transfers_pending_idx ON payments.transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX transfers_timestamp_idx ON payments.transfers ("timestamp");

CREATE FUNCTION payments.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on %.% is not allowed: ledger rows are immutable', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE OR TRUNCATE ON payments.transfers
    FOR EACH STATEMENT EXECUTE FUNCTION payments.refuse_change();

-- The mutable state of a two-phase transfer: the reservation it holds until posted, voided or
-- expired. `amount` is the reserved amount (the pending transfer's amount).
CREATE TABLE payments.pending_transfers (
    id                 uuid        PRIMARY KEY,
    debit_account_id   uuid        NOT NULL,
    credit_account_id  uuid        NOT NULL,
    amount             bigint      NOT NULL CHECK (amount > 0),
    expires_at         timestamptz,                                    -- NULL: no timeout
    state              text        NOT NULL DEFAULT 'pending'
                                   CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
    resolved_by        uuid,                                           -- the post/void transfer
    resolved_at        timestamptz
);
CREATE INDEX pending_transfers_open_idx ON payments.pending_transfers (expires_at)
    WHERE state = 'pending';

-- Ids that failed with an outcome a retry must not change (TigerBeetle's id_already_failed).
CREATE TABLE payments.failed_transfers (
    id         uuid        PRIMARY KEY,
    result     text        NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);

-- Accounts are never deleted, so an account the ledger found (under lock) when it wrote a
-- transfer exists for good; that is why transfers carry no foreign keys (they would cost two
-- index probes per row on the hot path; `citizen ledger check` verifies the references).
CREATE TRIGGER accounts_not_deleted BEFORE DELETE OR TRUNCATE ON payments.accounts
    FOR EACH STATEMENT EXECUTE FUNCTION payments.refuse_change();
