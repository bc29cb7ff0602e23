"""Registered clients: the registry (PostgreSQL, cached per worker) and its rules.

Redirect URIs are compared as exact strings (RFC 9700 §4.1): no wildcards, no prefix match, no
normalisation; registration refuses fragments, userinfo, dot-segments and plain http except for
loopback addresses of public (native) clients (``registration.py``, with the web origins for CORS).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from typing import Any, Literal

import msgspec

from identity._db import Pool
from identity.crypto import token_hash
from identity.errors import Conflict, InvalidField, NotFound
from identity.oidc.registration import (
    MIN_RSA_BITS,
    allowed_origins,
    check_uri,
    check_web_origins,
    rsa_bits,
)

__all__ = [
    "API_SCOPE",
    "GRANT_TYPES",
    "OFFLINE_ACCESS_SCOPE",
    "ORGANISATIONS_SCOPE",
    "SCOPES",
    "Client",
    "ClientRegistration",
    "ClientStore",
    "ClientView",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
GRANT_TYPES: tuple[str, ...] = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
)
# openid profile phone: OpenID Connect Core; real_name: verified name, birth date and level of
# assurance; organisations: the organisations the person acts for (and token exchange for them);
# offline_access: refresh tokens that outlive the sign-in (Core §11) — the grant keeps the full
# refresh lifetime; without it a client allowed the refresh grant still gets refresh tokens, but
# they end with the SSO session they were issued in (``GrantStore.lifetime``); api: the city's own
# API, whose audience a token carries only for a first-party client granted this scope (and which
# the API's guard requires).
API_SCOPE = "api"
OFFLINE_ACCESS_SCOPE = "offline_access"
ORGANISATIONS_SCOPE = "organisations"
SCOPES: tuple[str, ...] = (
    "openid",
    "profile",
    "phone",
    "real_name",
    ORGANISATIONS_SCOPE,
    OFFLINE_ACCESS_SCOPE,
    API_SCOPE,
)


class Client(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    name: str
    client_type: Literal["public", "confidential"]
    auth_method: AuthMethod
    secret_hash: bytes | None = None
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    web_origins: tuple[str, ...] = ()  # CORS (``registration.allowed_origins``); empty: the redirect URIs'
    grant_types: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    subject_type: Literal["public", "pairwise"] = "public"
    sector_identifier: str | None = None
    id_token_alg: str = "ES256"  # noqa: S105 - an algorithm name
    require_par: bool = False
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: every token request needs a proof
    first_party: bool = False
    audiences: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    logo_uri: str | None = None
    contacts: tuple[str, ...] = ()
    disabled: bool = False


class ClientRegistration(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    client_id: str | None = None
    name: str
    client_type: Literal["public", "confidential"] = "confidential"
    auth_method: AuthMethod = "client_secret_basic"
    jwks: dict[str, Any] | None = None
    redirect_uris: list[str] = msgspec.field(default_factory=list)
    post_logout_redirect_uris: list[str] = msgspec.field(default_factory=list)
    web_origins: list[str] = msgspec.field(default_factory=list)
    grant_types: list[str] = msgspec.field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile"])
    subject_type: Literal["public", "pairwise"] = "public"
    sector_identifier: str | None = None
    id_token_alg: Literal["ES256", "RS256", "EdDSA"] = "ES256"  # noqa: S105
    require_par: bool = False
    dpop_bound_access_tokens: bool = False
    first_party: bool = False
    audiences: list[str] = msgspec.field(default_factory=list)
    backchannel_logout_uri: str | None = None
    logo_uri: str | None = None
    contacts: list[str] = msgspec.field(default_factory=list)


class ClientView(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    name: str
    client_type: str
    auth_method: str
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    web_origins: list[str]
    grant_types: list[str]
    scopes: list[str]
    subject_type: str
    sector_identifier: str | None
    id_token_alg: str
    require_par: bool
    dpop_bound_access_tokens: bool
    first_party: bool
    audiences: list[str]
    backchannel_logout_uri: str | None
    logo_uri: str | None
    contacts: list[str]
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    # Only in the answer to a creation or a secret rotation: shown once, stored hashed.
    client_secret: str | None = None


_COLUMNS = (
    "client_id, name, client_type, auth_method, secret_hash, jwks::text AS jwks, redirect_uris,"
    " post_logout_redirect_uris,"
    " grant_types, scopes, subject_type, sector_identifier, id_token_alg, require_par, first_party,"
    " dpop_bound_access_tokens, audiences, backchannel_logout_uri, logo_uri, contacts, created_at,"
    " disabled_at, array(SELECT w.origin FROM identity.oidc_client_web_origins w"
    " WHERE w.client_id = oidc_clients.client_id ORDER BY w.origin) AS web_origins"
)


_BY_ID = f"SELECT {_COLUMNS} FROM identity.oidc_clients WHERE client_id = $1"  # noqa: S608 - constant


def _client(row: Any) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        client_type=row["client_type"],
        auth_method=row["auth_method"],
        secret_hash=bytes(row["secret_hash"]) if row["secret_hash"] is not None else None,
        jwks=json.loads(row["jwks"]) if row["jwks"] is not None else None,
        redirect_uris=tuple(row["redirect_uris"]),
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        web_origins=tuple(row["web_origins"]),
        grant_types=tuple(row["grant_types"]),
        scopes=tuple(row["scopes"]),
        subject_type=row["subject_type"],
        sector_identifier=row["sector_identifier"],
        id_token_alg=row["id_token_alg"],
        require_par=row["require_par"],
        dpop_bound_access_tokens=row["dpop_bound_access_tokens"],
        first_party=row["first_party"],
        audiences=tuple(row["audiences"]),
        backchannel_logout_uri=row["backchannel_logout_uri"],
        logo_uri=row["logo_uri"],
        contacts=tuple(row["contacts"]),
        disabled=row["disabled_at"] is not None,
    )


def view(row: Any, secret: str | None = None) -> ClientView:
    return ClientView(
        client_id=row["client_id"],
        name=row["name"],
        client_type=row["client_type"],
        auth_method=row["auth_method"],
        redirect_uris=list(row["redirect_uris"]),
        post_logout_redirect_uris=list(row["post_logout_redirect_uris"]),
        web_origins=list(row["web_origins"]),
        grant_types=list(row["grant_types"]),
        scopes=list(row["scopes"]),
        subject_type=row["subject_type"],
        sector_identifier=row["sector_identifier"],
        id_token_alg=row["id_token_alg"],
        require_par=row["require_par"],
        dpop_bound_access_tokens=row["dpop_bound_access_tokens"],
        first_party=row["first_party"],
        audiences=list(row["audiences"]),
        backchannel_logout_uri=row["backchannel_logout_uri"],
        logo_uri=row["logo_uri"],
        contacts=list(row["contacts"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        client_secret=secret,
    )


def validate_registration(data: ClientRegistration, *, development: bool, api_audience: str = "") -> None:
    """``api_audience``: the API's audience, which no client lists among its own: the issuer puts it
    on a token only for a first-party client granted the api scope (``TokenIssuer.audiences``)."""
    public = data.client_type == "public"
    if public != (data.auth_method == "none"):
        raise InvalidField(
            "auth_method", "client_type", "public clients use none; confidential ones never do"
        )
    if data.auth_method == "private_key_jwt" and not (data.jwks and isinstance(data.jwks.get("keys"), list)):
        raise InvalidField("jwks", "required", "private_key_jwt needs the client's public keys as a JWKS")
    for key in (data.jwks or {}).get("keys", []):
        if isinstance(key, dict) and key.get("kty") == "RSA" and rsa_bits(key) < MIN_RSA_BITS:
            raise InvalidField("jwks", "key_size", f"RSA keys must have at least {MIN_RSA_BITS} bits")
    for grant in data.grant_types:
        if grant not in GRANT_TYPES:
            raise InvalidField(
                "grant_types", "unknown", f"{grant!r} is not supported (no implicit, no password)"
            )
    if not data.grant_types:
        raise InvalidField("grant_types", "required", "at least one grant type")
    if public and set(data.grant_types) - {"authorization_code", "refresh_token"}:
        raise InvalidField("grant_types", "public_client", "public clients use the code flow only")
    for scope in data.scopes:
        if scope not in SCOPES:
            raise InvalidField("scopes", "unknown", f"{scope!r}; scopes are {', '.join(SCOPES)}")
    if "authorization_code" in data.grant_types and not data.redirect_uris:
        raise InvalidField("redirect_uris", "required", "the code flow needs at least one redirect URI")
    for uri in data.redirect_uris:
        check_uri("redirect_uris", uri, allow_loopback_http=public or development)
    for uri in data.post_logout_redirect_uris:
        check_uri("post_logout_redirect_uris", uri, allow_loopback_http=public or development)
    check_web_origins(data.web_origins, allow_loopback_http=public or development)
    if data.backchannel_logout_uri:
        check_uri(
            "backchannel_logout_uri",
            data.backchannel_logout_uri,
            allow_loopback_http=development,
            https_only=True,
        )
    if api_audience and api_audience in data.audiences:
        raise InvalidField(
            "audiences",
            "api",
            "the API's audience is not registered: it comes with the api scope, for first-party clients only",
        )
    if data.subject_type == "pairwise" and not data.sector_identifier:
        raise InvalidField("sector_identifier", "required", "pairwise subjects need a sector identifier")
    if data.client_id is not None and not re.fullmatch(r"[A-Za-z0-9._:-]{3,64}", data.client_id, re.ASCII):
        raise InvalidField("client_id", "format", "3-64 of A-Z a-z 0-9 . _ : -")


class ClientStore:
    def __init__(self, pool: Pool, *, cache_ttl: float, development: bool, api_audience: str) -> None:
        self._pool = pool
        self._ttl = cache_ttl
        self._development = development
        self._api_audience = api_audience
        self._cache: dict[str, tuple[float, Client]] = {}

    async def get(self, client_id: str) -> Client | None:
        """The client, or None if unknown or disabled."""
        hit = self._cache.get(client_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        if not 1 <= len(client_id) <= 64:
            return None
        row = await self._pool.fetchrow(_BY_ID, client_id)
        if row is None or row["disabled_at"] is not None:
            self._cache.pop(client_id, None)
            return None
        client = _client(row)
        self._cache[client_id] = (now, client)
        return client

    def forget(self, client_id: str) -> None:
        """Drop the local copy of one client (``*``: of every client)."""
        if client_id == "*":
            self._cache.clear()
        else:
            self._cache.pop(client_id, None)

    async def create(self, data: ClientRegistration) -> ClientView:
        validate_registration(data, development=self._development, api_audience=self._api_audience)
        client_id = data.client_id or "c-" + secrets.token_urlsafe(12)
        secret = None
        if data.auth_method in {"client_secret_basic", "client_secret_post"}:
            secret = secrets.token_urlsafe(32)
        origins = sorted(set(data.web_origins))
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"""
                INSERT INTO identity.oidc_clients
                    (client_id, name, client_type, auth_method, secret_hash, jwks, redirect_uris,
                     post_logout_redirect_uris, grant_types, scopes, subject_type, sector_identifier,
                     id_token_alg, require_par, first_party, audiences, backchannel_logout_uri, logo_uri,
                     contacts, dpop_bound_access_tokens)
                VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                        $16, $17, $18, $19, $20)
                ON CONFLICT (client_id) DO NOTHING
                RETURNING {_COLUMNS}
                """,  # noqa: S608 - the column list is a constant
                client_id,
                data.name,
                data.client_type,
                data.auth_method,
                token_hash(secret) if secret else None,
                json.dumps(data.jwks) if data.jwks is not None else None,
                data.redirect_uris,
                data.post_logout_redirect_uris,
                sorted(set(data.grant_types)),
                sorted(set(data.scopes)),
                data.subject_type,
                data.sector_identifier,
                data.id_token_alg,
                data.require_par,
                data.first_party,
                data.audiences,
                data.backchannel_logout_uri,
                data.logo_uri,
                data.contacts,
                data.dpop_bound_access_tokens,
            )
            if row is None:
                raise Conflict(f"a client named {client_id} exists")
            if origins:  # in the client's transaction: written with the client or not at all
                await conn.execute(
                    "INSERT INTO identity.oidc_client_web_origins (client_id, origin)"
                    " SELECT $1, unnest($2::text[])",
                    client_id,
                    origins,
                )
        return msgspec.structs.replace(view(row, secret), web_origins=origins)  # RETURNING ran before

    async def list(self) -> list[ClientView]:
        query = f"SELECT {_COLUMNS} FROM identity.oidc_clients ORDER BY created_at"  # noqa: S608
        rows = await self._pool.fetch(query)
        return [view(r) for r in rows]

    async def origins_in_use(self) -> frozenset[str]:
        """Every origin some active client allows (``registration.allowed_origins``): CORS preflights'."""
        rows = await self._pool.fetch(
            "SELECT c.redirect_uris, array(SELECT w.origin FROM identity.oidc_client_web_origins w"
            " WHERE w.client_id = c.client_id) AS web_origins"
            " FROM identity.oidc_clients c WHERE c.disabled_at IS NULL"
        )
        return frozenset().union(*(allowed_origins(r["web_origins"], r["redirect_uris"]) for r in rows))

    async def view(self, client_id: str) -> ClientView:
        row = await self._pool.fetchrow(_BY_ID, client_id)
        if row is None:
            raise NotFound("no such client")
        return view(row)

    async def rotate_secret(self, client_id: str) -> ClientView:
        secret = secrets.token_urlsafe(32)
        row = await self._pool.fetchrow(
            f"""
            UPDATE identity.oidc_clients SET secret_hash = $2, updated_at = now()
            WHERE client_id = $1 AND secret_hash IS NOT NULL RETURNING {_COLUMNS}
            """,  # noqa: S608 - the column list is a constant
            client_id,
            token_hash(secret),
        )
        if row is None:
            raise NotFound("no client with a secret by this id")
        self.forget(client_id)
        return view(row, secret)

    async def disable(self, client_id: str) -> ClientView:
        row = await self._pool.fetchrow(
            f"""
            UPDATE identity.oidc_clients SET disabled_at = coalesce(disabled_at, now()), updated_at = now()
            WHERE client_id = $1 RETURNING {_COLUMNS}
            """,  # noqa: S608 - the column list is a constant
            client_id,
        )
        if row is None:
            raise NotFound("no such client")
        self.forget(client_id)
        return view(row)
