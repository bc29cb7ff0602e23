-- CORS for the OpenID provider (identity/oidc/cors.py): the browser origins from which a client's
-- JavaScript may call the token, userinfo and revocation endpoints (Keycloak's "web origins").
-- A client without rows here is allowed the origins of its http(s) redirect URIs.
-- One row per origin, exactly as browsers send it in the Origin header (RFC 6454 §6.2):
-- scheme://host[:port], no path; identity/oidc/registration.py checks the rest at registration.
-- Written in the client's own registration transaction (ClientStore.create).
CREATE TABLE identity.oidc_client_web_origins (
    client_id  text NOT NULL REFERENCES identity.oidc_clients (client_id) ON DELETE CASCADE,
    origin     text NOT NULL CHECK (origin ~ '^https?://[^/?#@*[:space:]]+$' AND length(origin) <= 300),
    PRIMARY KEY (client_id, origin)
);
