-- Identity: persons and operators, organisations and their agents, sessions, and the audit chain.
CREATE SCHEMA identity;

-- Natural persons. ID and mobile numbers are AES-256-GCM ciphertexts (key id inside, see
-- identity/crypto.py) found through HMAC blind indexes; no column holds them in clear.
CREATE TABLE identity.accounts (
    id                  uuid        PRIMARY KEY,
    status              text        NOT NULL DEFAULT 'active'
                                    CHECK (status IN ('active', 'frozen', 'deactivated')),
    level               smallint    NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 3),
    mobile_enc          bytea       NOT NULL,
    mobile_index        bytea       NOT NULL,
    name_enc            bytea,
    id_number_enc       bytea,
    id_number_index     bytea,
    attributes_enc      bytea,      -- the registry's view (birth date, gender, region) as JSON
    verified_at         timestamptz,
    password_hash       text,
    password_changed_at timestamptz,
    totp_secret_enc     bytea,
    totp_pending_enc    bytea,
    totp_enabled_at     timestamptz,
    totp_last_step      bigint      NOT NULL DEFAULT 0,
    frozen_at           timestamptz,
    frozen_reason       text,
    deactivated_at      timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((id_number_enc IS NULL) = (id_number_index IS NULL)),
    CHECK ((id_number_index IS NULL) = (verified_at IS NULL)),
    CHECK (level = 1 OR verified_at IS NOT NULL),
    CHECK (level < 3 OR totp_enabled_at IS NOT NULL)
);
-- One live account per mobile and per ID number; a deactivated account frees both.
CREATE UNIQUE INDEX accounts_mobile_index ON identity.accounts (mobile_index)
    WHERE status <> 'deactivated';
CREATE UNIQUE INDEX accounts_id_number_index ON identity.accounts (id_number_index)
    WHERE status <> 'deactivated' AND id_number_index IS NOT NULL;
-- Operators find deactivated accounts too.
CREATE INDEX accounts_mobile_lookup ON identity.accounts (mobile_index);
CREATE INDEX accounts_id_number_lookup ON identity.accounts (id_number_index) WHERE id_number_index IS NOT NULL;

-- The city's operators (central user management): separate from citizens, with their own roles.
CREATE TABLE identity.operators (
    id              uuid        PRIMARY KEY,
    username        text        NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{3,64}$'),
    display_name    text        NOT NULL,
    password_hash   text        NOT NULL,
    roles           text[]      NOT NULL
                                CHECK (cardinality(roles) > 0
                                       AND roles <@ ARRAY['support', 'auditor', 'security_admin']),
    status          text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identity.organisations (
    id                      uuid        PRIMARY KEY,
    credit_code             text        NOT NULL UNIQUE CHECK (credit_code ~ '^[0-9A-Z]{18}$'),
    name                    text        NOT NULL,
    kind                    text        NOT NULL,
    registry_status         text        NOT NULL,
    registered_on           date,
    legal_representative_id uuid        NOT NULL REFERENCES identity.accounts (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- Agents (经办人): a person's roles in an organisation. The legal representative is an agent with
-- every role and no end date; others have an end date (exclusive instant).
CREATE TABLE identity.agents (
    id                      uuid        PRIMARY KEY,
    organisation_id         uuid        NOT NULL REFERENCES identity.organisations (id),
    account_id              uuid        NOT NULL REFERENCES identity.accounts (id),
    roles                   text[]      NOT NULL
                                        CHECK (cardinality(roles) > 0
                                               AND roles <@ ARRAY['card_admin', 'payments', 'filings']),
    is_legal_representative boolean     NOT NULL DEFAULT false,
    status                  text        NOT NULL DEFAULT 'active'
                                        CHECK (status IN ('active', 'suspended', 'removed')),
    valid_until             timestamptz,
    appointed_by            uuid        REFERENCES identity.accounts (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (is_legal_representative OR valid_until IS NOT NULL)
);
CREATE UNIQUE INDEX agents_one_live ON identity.agents (organisation_id, account_id)
    WHERE status <> 'removed';
CREATE INDEX agents_by_account ON identity.agents (account_id) WHERE status <> 'removed';

-- Bearer sessions (Redis serves them; this is the record operators see and revocation uses).
CREATE TABLE identity.sessions (
    id              uuid        PRIMARY KEY,
    token_hash      bytea       NOT NULL UNIQUE,
    account_id      uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('person', 'operator')),
    loa             smallint    NOT NULL CHECK (loa BETWEEN 1 AND 3),
    amr             text[]      NOT NULL DEFAULT '{}',
    client_address  text,
    client_id       text,
    user_agent      text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX sessions_by_account ON identity.sessions (account_id, created_at DESC);

-- The audit log: append-only, each entry chained to the previous one by SHA-256.
--   hash = sha256(prev_hash || int8send(seq) || digest), digest = sha256(canonical entry)
-- where the canonical entry is computed from the row's columns (identity/audit/chain.py).
-- audit_head holds the last (seq, hash): its row lock serialises appends, and it shows a
-- truncated tail.
CREATE TABLE identity.audit_log (
    seq             bigint      PRIMARY KEY,
    occurred_at     timestamptz NOT NULL,
    actor_kind      text        NOT NULL,
    actor_id        text,
    acting_for      text,
    action          text        NOT NULL,
    target_kind     text,
    target_id       text,
    outcome         text        NOT NULL,
    client_address  text,
    client_id       text,
    request_id      text,
    details         jsonb       NOT NULL DEFAULT '{}',
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_by_actor ON identity.audit_log (actor_id, seq) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_by_target ON identity.audit_log (target_id, seq) WHERE target_id IS NOT NULL;
CREATE INDEX audit_by_acting_for ON identity.audit_log (acting_for, seq) WHERE acting_for IS NOT NULL;

CREATE TABLE identity.audit_head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq         bigint  NOT NULL,
    hash        bytea   NOT NULL
);
INSERT INTO identity.audit_head (singleton, seq, hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));

CREATE FUNCTION identity.audit_append(
    p_occurred_at timestamptz, p_actor_kind text, p_actor_id text, p_acting_for text, p_action text,
    p_target_kind text, p_target_id text, p_outcome text, p_client_address text, p_client_id text,
    p_request_id text, p_details jsonb, p_digest bytea
) RETURNS TABLE (seq bigint, hash bytea)
LANGUAGE plpgsql AS $$
DECLARE
    v_seq  bigint;
    v_prev bytea;
    v_hash bytea;
BEGIN
    -- The head's row lock is held until the caller's transaction ends: appends are serial.
    SELECT h.seq, h.hash INTO v_seq, v_prev FROM identity.audit_head h WHERE h.singleton FOR UPDATE;
    v_seq := v_seq + 1;
    v_hash := sha256(v_prev || int8send(v_seq) || p_digest);
    INSERT INTO identity.audit_log
        (seq, occurred_at, actor_kind, actor_id, acting_for, action, target_kind, target_id, outcome,
         client_address, client_id, request_id, details, prev_hash, hash)
    VALUES
        (v_seq, p_occurred_at, p_actor_kind, p_actor_id, p_acting_for, p_action, p_target_kind,
         p_target_id, p_outcome, p_client_address, p_client_id, p_request_id, p_details, v_prev, v_hash);
    UPDATE identity.audit_head h SET seq = v_seq, hash = v_hash WHERE h.singleton;
    RETURN QUERY SELECT v_seq, v_hash;
END
$$;

-- A guard, not the proof: the hash chain detects what a superuser does with the trigger disabled.
CREATE FUNCTION identity.audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'identity.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON identity.audit_log
    FOR EACH ROW EXECUTE FUNCTION identity.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON identity.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION identity.audit_log_is_append_only();
