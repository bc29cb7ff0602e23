-- Integrations: the service catalogue behind the app's single entrance, the in-app inbox, and
-- what the application-status poll last saw.
CREATE SCHEMA integrations;

-- Every service the app offers, whoever runs it. Operators edit these rows; the app re-reads them
-- within a minute (integrations.catalogue). ``connector`` is the upstream the service depends on
-- (its availability is that connector's circuit breaker); ``tile`` the home tile it drives.
CREATE TABLE integrations.services (
    id          text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    category    text        NOT NULL CHECK (category ~ '^[a-z_]{2,32}$'),
    audience    text[]      NOT NULL CHECK (cardinality(audience) > 0
                                            AND audience <@ ARRAY['person', 'organisation']),
    min_loa     smallint    NOT NULL CHECK (min_loa BETWEEN 1 AND 3),
    org_role    text        CHECK (org_role IN ('card_admin', 'payments', 'filings')),
    connector   text,
    tile        text        UNIQUE,
    name_zh     text        NOT NULL,
    name_en     text        NOT NULL,
    summary_zh  text        NOT NULL DEFAULT '',
    summary_en  text        NOT NULL DEFAULT '',
    keywords    text        NOT NULL DEFAULT '',
    position    integer     NOT NULL DEFAULT 100,
    enabled     boolean     NOT NULL DEFAULT true,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The inbox: one row per message to a person or an organisation. ``dedupe_key`` makes notify()
-- idempotent per recipient (an event delivered twice is one message).
CREATE TABLE integrations.messages (
    id              uuid        PRIMARY KEY,
    recipient_kind  text        NOT NULL CHECK (recipient_kind IN ('person', 'organisation')),
    recipient_id    uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    title           text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body            text        NOT NULL CHECK (length(body) <= 4000),
    data            jsonb       NOT NULL DEFAULT '{}',
    dedupe_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz
);
CREATE INDEX messages_by_recipient ON integrations.messages (recipient_kind, recipient_id, created_at DESC, id DESC);
CREATE INDEX messages_unread ON integrations.messages (recipient_kind, recipient_id) WHERE read_at IS NULL;
CREATE UNIQUE INDEX messages_dedupe ON integrations.messages (recipient_kind, recipient_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL;

-- The last status seen of each government application of a person, so that a change (seen by the
-- home or by ``citizen messages poll``) becomes one message.
CREATE TABLE integrations.application_statuses (
    person_id       uuid        NOT NULL,
    application_id  text        NOT NULL,
    service         text        NOT NULL,
    status          text        NOT NULL,
    seen_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (person_id, application_id)
);
