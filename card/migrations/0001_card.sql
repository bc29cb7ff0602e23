-- The virtual citizen card: cards, their applications, lifecycle history, device bindings,
-- the versioned blacklist, issuer master keys (encrypted) and personalisation exports.
-- The e-purse balance of record lives in the payments ledger (payments.accounts); the card keeps
-- the card-side counters and the ledger account id. holder_id is identity's person id (no
-- cross-schema foreign key: identity's rows are never deleted and card reads them only by id).
CREATE SCHEMA card;

-- Issued card numbers: prefix || lpad(nextval) || Luhn digit (card.lifecycle.numbers).
CREATE SEQUENCE card.card_number_seq;

CREATE TABLE card.cards (
    id                uuid        PRIMARY KEY,
    card_number       text        NOT NULL UNIQUE CHECK (card_number ~ '^[0-9]{12,19}$'),
    card_number_int   bigint      NOT NULL UNIQUE,                    -- the same, for blacklists
    app_serial        bytea       NOT NULL UNIQUE CHECK (length(app_serial) = 10),  -- file 0x15 bytes 10..19
    holder_id         uuid        NOT NULL,
    status            text        NOT NULL
                                  CHECK (status IN ('active', 'frozen', 'lost', 'replaced', 'closed')),
    issued_on         date        NOT NULL,
    expires_on        date        NOT NULL CHECK (expires_on > issued_on),
    replaces_id       uuid        REFERENCES card.cards (id),
    physical          boolean     NOT NULL DEFAULT false,
    status_changed_at timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- One live card per person: a lost card still counts until it is reissued or closed.
CREATE UNIQUE INDEX cards_one_live_per_holder ON card.cards (holder_id)
    WHERE status IN ('active', 'frozen', 'lost');
CREATE INDEX cards_holder_idx ON card.cards (holder_id);

-- Applications on a card: the type decides the Struct that validates ``attributes``
-- (card.applications). New types need no schema change.
CREATE TABLE card.applications (
    card_id     uuid        NOT NULL REFERENCES card.cards (id),
    app_type    text        NOT NULL CHECK (app_type ~ '^[a-z][a-z0-9_]{1,31}$'),
    status      text        NOT NULL CHECK (status IN ('pending', 'active', 'blocked', 'closed')),
    attributes  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (card_id, app_type)
);

-- The transit e-purse's card-side state, kept in columns because the terminal gateway updates the
-- counters on every load and reads them on every upload.
CREATE TABLE card.epurses (
    card_id            uuid     PRIMARY KEY REFERENCES card.cards (id),
    key_version        integer  NOT NULL CHECK (key_version > 0),     -- issuer master keys' version
    ledger_account_id  uuid     UNIQUE,                               -- payments.accounts (code EPURSE)
    offline_counter    integer  NOT NULL DEFAULT 0 CHECK (offline_counter BETWEEN 0 AND 65535),
    online_counter     integer  NOT NULL DEFAULT 0 CHECK (online_counter BETWEEN 0 AND 65535),
    overdraft_limit    bigint   NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    concession         smallint NOT NULL CHECK (concession BETWEEN 1 AND 5)  -- card.qr.Concession
);

-- Every status change and every other change to a card, in order (also audited by identity).
CREATE TABLE card.lifecycle_events (
    id           bigserial   PRIMARY KEY,
    card_id      uuid        NOT NULL REFERENCES card.cards (id),
    occurred_at  timestamptz NOT NULL,
    action       text        NOT NULL,
    from_status  text,
    to_status    text        NOT NULL,
    actor_kind   text        NOT NULL,
    actor_id     text,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX lifecycle_events_card_idx ON card.lifecycle_events (card_id, id);

-- Phones the card is activated on: one active binding per card.
CREATE TABLE card.device_bindings (
    id                 uuid        PRIMARY KEY,
    card_id            uuid        NOT NULL REFERENCES card.cards (id),
    device_public_key  bytea       NOT NULL CHECK (length(device_public_key) = 33),
    device_label       text,
    authorisation      bytea       NOT NULL CHECK (length(authorisation) = 123),
    authorisation_id   bigint      NOT NULL UNIQUE,                  -- blacklist id (card.blacklist)
    key_id             integer     NOT NULL,
    expires_at         timestamptz NOT NULL,
    status             text        NOT NULL CHECK (status IN ('active', 'revoked')),
    bound_at           timestamptz NOT NULL,
    revoked_at         timestamptz,
    revoke_reason      text
);
CREATE UNIQUE INDEX device_bindings_one_active ON card.device_bindings (card_id) WHERE status = 'active';

-- Development only: the demo page's simulated phone key, encrypted like the master keys.
CREATE TABLE card.demo_device_keys (
    binding_id   uuid  PRIMARY KEY REFERENCES card.device_bindings (id),
    wrapped_key  bytea NOT NULL
);

-- Blacklist (hotlist), card-protocol.md §6.1: the current list, and every change by version.
-- kind 1 = card number, 2 = device authorisation id. A version is one committed change set.
CREATE TABLE card.blacklist_head (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint  NOT NULL
);
INSERT INTO card.blacklist_head (version) VALUES (0);

CREATE TABLE card.blacklist_versions (
    version     bigint      PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    valid_from  timestamptz NOT NULL
);

CREATE TABLE card.blacklist_entries (
    kind        smallint    NOT NULL CHECK (kind IN (1, 2)),
    value       bigint      NOT NULL,
    card_id     uuid,
    reason      text        NOT NULL,
    version     bigint      NOT NULL,
    PRIMARY KEY (kind, value)
);

CREATE TABLE card.blacklist_changes (
    version  bigint   NOT NULL REFERENCES card.blacklist_versions (version),
    kind     smallint NOT NULL CHECK (kind IN (1, 2)),
    value    bigint   NOT NULL,
    action   "char"   NOT NULL CHECK (action IN ('a', 'r')),            -- add / remove
    PRIMARY KEY (version, kind, value)
);

-- Issuer master keys and platform signing keys, AES-256-GCM under the keyring's "card-kek"
-- (AAD = purpose and version). Never stored in plain form.
CREATE TABLE card.issuer_keys (
    purpose     text        NOT NULL CHECK (purpose IN ('DPK', 'DLK', 'DTK', 'QR_SIGN', 'DOC_SIGN')),
    version     integer     NOT NULL CHECK (version BETWEEN 1 AND 65535),
    algorithm   text        NOT NULL,                                 -- '3DES' / 'SM4' / 'P-256'
    wrapped     bytea       NOT NULL,                                 -- nonce(12) || ciphertext+tag
    check_value bytea       NOT NULL,                                 -- KCV, or the public key
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purpose, version)
);
-- The version new cards get; rotation moves it forward, old versions stay for verification.
CREATE TABLE card.key_state (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    current_version  integer NOT NULL
);

-- Physical card requests and the signed personalisation files sent to the card bureau.
CREATE TABLE card.physical_requests (
    id            uuid        PRIMARY KEY,
    card_id       uuid        NOT NULL REFERENCES card.cards (id),
    status        text        NOT NULL CHECK (status IN ('requested', 'exported', 'cancelled')),
    requested_at  timestamptz NOT NULL,
    exported_at   timestamptz
);
CREATE UNIQUE INDEX physical_requests_one_open ON card.physical_requests (card_id) WHERE status = 'requested';

CREATE TABLE card.personalisation_exports (
    id             uuid        PRIMARY KEY,
    card_id        uuid        NOT NULL REFERENCES card.cards (id),
    request_id     uuid        REFERENCES card.physical_requests (id),
    key_version    integer     NOT NULL,
    recipient_kid  text        NOT NULL,                              -- SHA-256 of the transport key
    document       bytea       NOT NULL,                              -- the signed file as sent
    created_at     timestamptz NOT NULL
);

-- Reissue: the old purse's balance moves to the new card after the settlement window.
CREATE TABLE card.balance_transfers (
    old_card_id   uuid        PRIMARY KEY REFERENCES card.cards (id),
    new_card_id   uuid        NOT NULL REFERENCES card.cards (id),
    due_at        timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('scheduled', 'done')),
    amount        bigint,
    done_at       timestamptz
);
CREATE INDEX balance_transfers_due_idx ON card.balance_transfers (due_at) WHERE status = 'scheduled';
