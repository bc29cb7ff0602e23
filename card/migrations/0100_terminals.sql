-- The terminal transaction protocol (issue 6, docs/terminal-protocol.md): the terminal registry,
-- uploaded offline records (exactly once), the suspense queue, follow-up flags, batches, online
-- loads and settlement comparisons. Numbers 0100-0199 belong to card.terminal.
-- IF NOT EXISTS: 0001 (the card core) creates the schema first on every fresh database.
CREATE SCHEMA IF NOT EXISTS card;

CREATE SEQUENCE card.terminal_psam_seq;

CREATE TABLE card.terminals (
    id                  text        PRIMARY KEY CHECK (id ~ '^[0-9A-Z-]{1,16}$'),
    operator            text        NOT NULL CHECK (operator ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    kind                smallint    NOT NULL CHECK (kind IN (1, 2, 3)),      -- 1 bus, 2 gate, 3 kiosk
    line                text        CHECK (line ~ '^[0-9A-Z-]{1,16}$'),      -- bus line / metro line
    site                text,                                                -- station, kiosk site
    status              text        NOT NULL CHECK (status IN ('active', 'disabled')),
    psam_terminal_no    bytea       NOT NULL UNIQUE CHECK (length(psam_terminal_no) = 6),
    -- Terminal master key: AES-256-GCM under the keyring's "card-kek", AAD 'tmk:<id>:<version>'.
    tmk_wrapped         bytea       NOT NULL,
    tmk_version         integer     NOT NULL DEFAULT 1 CHECK (tmk_version > 0),
    tmk_check           bytea       NOT NULL,                                -- KCV of the TMK
    software_version    text,
    fare_version        bigint,                                              -- as reported at sign-on
    blacklist_version   bigint,
    parameter_version   bigint,
    last_sign_on_at     timestamptz,
    last_batch_number   bigint      NOT NULL DEFAULT 0,
    last_serial         bigint      NOT NULL DEFAULT 0,                      -- highest record serial seen
    created_at          timestamptz NOT NULL DEFAULT now(),
    status_changed_at   timestamptz NOT NULL DEFAULT now()
);

-- Every uploaded offline record, accepted or suspended, once. (terminal, serial) is the terminal's
-- own identity of the record; (card, counter, type) the card's. A re-upload hits one of the two
-- and is answered "duplicate" without a second posting (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE card.terminal_records (
    terminal_id      text        NOT NULL,
    terminal_serial  bigint      NOT NULL,
    kind             smallint    NOT NULL,                                   -- RecordKind
    app_serial       bytea       NOT NULL,                                   -- card / QR account
    card_number      text,
    card_counter     bigint      NOT NULL,
    txn_type         smallint    NOT NULL,                                   -- 06, 09, 0x88 (QR)
    amount           bigint      NOT NULL CHECK (amount >= 0),
    balance_before   bigint,
    txn_time         timestamptz NOT NULL,
    line             text,
    stop             integer,
    entry_stop       integer,
    tac              bytea       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('accepted', 'suspended')),
    reason           smallint    NOT NULL DEFAULT 0,                         -- RecordReason
    batch_id         bigint      NOT NULL,
    transfer_id      uuid,                                                   -- payments.transfers
    received_at      timestamptz NOT NULL DEFAULT now(),
    record           bytea       NOT NULL,                                   -- the record's TLV as sent
    PRIMARY KEY (terminal_id, terminal_serial)
);
CREATE UNIQUE INDEX terminal_records_card_counter ON card.terminal_records (app_serial, card_counter, txn_type)
    WHERE status = 'accepted';
CREATE INDEX terminal_records_batch_idx ON card.terminal_records (batch_id);

-- The suspense queue: records that failed a host check, with the reason, for an operator.
CREATE TABLE card.terminal_suspense (
    terminal_id      text        NOT NULL,
    terminal_serial  bigint      NOT NULL,
    reason           smallint    NOT NULL,
    detail           text,
    state            text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    resolution       text,
    PRIMARY KEY (terminal_id, terminal_serial)
);
CREATE INDEX terminal_suspense_open_idx ON card.terminal_suspense (created_at) WHERE state = 'open';

-- Follow-ups on accepted records: counter / serial gaps, balance-chain breaks, late blacklist
-- hits, fare differences. The money moved; someone must look.
CREATE TABLE card.terminal_followups (
    id               bigserial   PRIMARY KEY,
    terminal_id      text        NOT NULL,
    terminal_serial  bigint      NOT NULL,
    flag             smallint    NOT NULL,                                   -- spec.Flag
    detail           text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminal_followups_record_idx ON card.terminal_followups (terminal_id, terminal_serial);

-- One row per committed upload (an upload whose transaction rolled back leaves nothing).
CREATE TABLE card.terminal_batches (
    id             bigserial   PRIMARY KEY,
    terminal_id    text        NOT NULL,
    batch_number   bigint      NOT NULL,
    records        integer     NOT NULL,
    accepted       integer     NOT NULL,
    duplicates     integer     NOT NULL,
    rejected       integer     NOT NULL,
    amount         bigint      NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminal_batches_terminal_idx ON card.terminal_batches (terminal_id, batch_number);

-- Online loads (圈存): one row per kiosk load id, with the ledger's pending transfer.
CREATE TABLE card.terminal_loads (
    load_id          uuid        PRIMARY KEY,
    terminal_id      text        NOT NULL,
    app_serial       bytea       NOT NULL,
    amount           bigint      NOT NULL CHECK (amount > 0),
    balance_before   bigint      NOT NULL,
    online_counter   integer     NOT NULL,
    funding          text        NOT NULL,
    host_time        bytea       NOT NULL,                                   -- DT7 under MAC2
    mac2             bytea       NOT NULL,
    transfer_id      uuid        NOT NULL,                                   -- the pending transfer
    state            text        NOT NULL CHECK (state IN ('authorised', 'confirmed', 'reversed')),
    tac              bytea,
    new_balance      bigint,
    request_digest   bytea       NOT NULL,                                   -- same id, same request
    created_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    UNIQUE (app_serial, online_counter)
);
CREATE INDEX terminal_loads_open_idx ON card.terminal_loads (created_at) WHERE state = 'authorised';

-- Terminal totals for a batch period against the host's, with the difference.
CREATE TABLE card.terminal_settlements (
    id                bigserial   PRIMARY KEY,
    terminal_id       text        NOT NULL,
    batch_from        bigint      NOT NULL,
    batch_to          bigint      NOT NULL,
    terminal_count    bigint      NOT NULL,
    terminal_amount   bigint      NOT NULL,
    host_count        bigint      NOT NULL,
    host_amount       bigint      NOT NULL,
    matched           boolean     NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
