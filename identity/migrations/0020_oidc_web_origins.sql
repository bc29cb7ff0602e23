-- CORS for the OpenID provider (identity/oidc/cors.py): the browser origins from which a client's
-- JavaScript may call the token, userinfo and revocation endpoints (Keycloak's "web origins").
-- A client without rows here is allowed the origins of its http(s) redirect URIs.
-- One row per origin, exactly as browsers send it in the Origin header (RFC 6454 §6.2):
-- scheme://host[:port], no path; identity/oidc/registration.py checks the rest at registration.
--
-- No foreign key to identity.oidc_clients: on a new database this file (0020) runs before 0100,
-- which creates that table. ClientStore.create writes a client and its origins in one
-- transaction, and clients are disabled, never deleted, so no row here lacks its client.
CREATE TABLE identity.oidc_client_web_origins (
    client_id  text NOT NULL CHECK (client_id ~ '^[A-Za-z0-9._:-]{3,64}$'),
    origin     text NOT NULL CHECK (origin ~ '^https?://[^/?#@*[:space:]]+$' AND length(origin) <= 300),
    PRIMARY KEY (client_id, origin)
);
