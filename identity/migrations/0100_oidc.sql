-- OpenID provider (identity.oidc): signing keys, partner clients, consents and grants.
-- Short-lived single-use state (codes, PAR request URIs, refresh tokens, assertion jti, SSO
-- sessions) lives in Redis; this is what must survive and what people and operators list.

-- Signing keys. The private key is PKCS#8 DER sealed with AES-256-GCM under the "oidc-kek" key
-- (nonce || ciphertext, associated data "oidc-key:<kid>"). A key is published from created_at,
-- signs from signs_from (publish before sign), stops signing at retired_at and stays published
-- until published_until (the longest lifetime of a token it signed).
CREATE TABLE identity.oidc_keys (
    kid             text        PRIMARY KEY,
    alg             text        NOT NULL CHECK (alg IN ('ES256', 'RS256', 'EdDSA')),
    public_jwk      jsonb       NOT NULL,
    private_sealed  bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    signs_from      timestamptz NOT NULL,
    retired_at      timestamptz,
    published_until timestamptz,
    CHECK (signs_from >= created_at),
    CHECK (retired_at IS NULL OR published_until IS NOT NULL)
);
CREATE INDEX oidc_keys_by_alg ON identity.oidc_keys (alg, signs_from DESC);

-- Partner and first-party clients, registered by operators (security_admin). Secrets are stored
-- as SHA-256 of 256 random bits and shown once.
CREATE TABLE identity.oidc_clients (
    client_id                 text        PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9._:-]{3,64}$'),
    name                      text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    client_type               text        NOT NULL CHECK (client_type IN ('public', 'confidential')),
    auth_method               text        NOT NULL CHECK (auth_method IN
                                          ('client_secret_basic', 'client_secret_post', 'private_key_jwt',
                                           'none')),
    secret_hash               bytea,
    jwks                      jsonb,
    redirect_uris             text[]      NOT NULL DEFAULT '{}',
    post_logout_redirect_uris text[]      NOT NULL DEFAULT '{}',
    grant_types               text[]      NOT NULL,
    scopes                    text[]      NOT NULL,
    subject_type              text        NOT NULL DEFAULT 'public' CHECK (subject_type IN ('public', 'pairwise')),
    sector_identifier         text,
    id_token_alg              text        NOT NULL DEFAULT 'ES256' CHECK (id_token_alg IN ('ES256', 'RS256', 'EdDSA')),
    require_par               boolean     NOT NULL DEFAULT false,
    first_party               boolean     NOT NULL DEFAULT false,
    audiences                 text[]      NOT NULL DEFAULT '{}',
    backchannel_logout_uri    text,
    logo_uri                  text,
    contacts                  text[]      NOT NULL DEFAULT '{}',
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    disabled_at               timestamptz,
    CHECK ((auth_method IN ('client_secret_basic', 'client_secret_post')) = (secret_hash IS NOT NULL)),
    CHECK ((auth_method = 'private_key_jwt') = (jwks IS NOT NULL)),
    CHECK ((auth_method = 'none') = (client_type = 'public')),
    CHECK (subject_type = 'public' OR sector_identifier IS NOT NULL)
);

-- Consent: one row per person and client, the scopes granted; shown again only for new scopes.
CREATE TABLE identity.oidc_consents (
    account_id  uuid        NOT NULL REFERENCES identity.accounts (id),
    client_id   text        NOT NULL REFERENCES identity.oidc_clients (client_id),
    scopes      text[]      NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, client_id)
);

-- Grants: one per authorization (code) or token exchange; its tokens live in Redis
-- ("oidc:grant:<id>"), and revoking the grant here and there ends every token issued from it.
CREATE TABLE identity.oidc_grants (
    id              uuid        PRIMARY KEY,
    client_id       text        NOT NULL REFERENCES identity.oidc_clients (client_id),
    account_id      uuid        REFERENCES identity.accounts (id),
    sso_session_id  uuid,
    scopes          text[]      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX oidc_grants_live_by_account ON identity.oidc_grants (account_id, client_id) WHERE revoked_at IS NULL;
CREATE INDEX oidc_grants_live_by_session ON identity.oidc_grants (sso_session_id) WHERE revoked_at IS NULL;
