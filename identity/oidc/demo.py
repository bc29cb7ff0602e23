"""``citizen demo`` for the provider (idempotent): the city app (public, PKCE) and two partner web
applications (confidential), with secrets derived from this installation's keys so that the demo
output can print them every time (they are stored hashed like any other)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import redis.asyncio as aioredis

from identity._db import Pool
from identity.crypto import token_hash
from identity.oidc.clients import ClientRegistration, validate_registration
from identity.oidc.wiring import api_audience_of, issuer_of, key_store

__all__ = ["DEMO_CLIENTS", "load_oidc_demo"]

_ALL = ["openid", "profile", "phone", "real_name", "organisations", "offline_access"]
DEMO_CLIENTS: tuple[ClientRegistration, ...] = (
    ClientRegistration(
        client_id="city-app",
        name="市民通 App",
        client_type="public",
        auth_method="none",
        first_party=True,
        redirect_uris=["cn.gov.city.app:/oauth/callback", "http://127.0.0.1:8765/callback"],
        scopes=[*_ALL, "api"],
        grant_types=["authorization_code", "refresh_token"],
    ),
    ClientRegistration(
        client_id="partner-health",
        name="市一医院预约挂号",
        redirect_uris=["http://127.0.0.1:8801/callback"],
        post_logout_redirect_uris=["http://127.0.0.1:8801/"],
        scopes=_ALL,
        subject_type="pairwise",
        sector_identifier="health.city",
        backchannel_logout_uri="http://127.0.0.1:8801/backchannel-logout",
        grant_types=[
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        contacts=["it@hospital.example"],
    ),
    ClientRegistration(
        client_id="partner-utility",
        name="城市水务缴费",
        redirect_uris=["http://127.0.0.1:8802/callback"],
        post_logout_redirect_uris=["http://127.0.0.1:8802/"],
        scopes=["openid", "profile", "phone"],
        auth_method="client_secret_post",
        backchannel_logout_uri="http://127.0.0.1:8802/backchannel-logout",
    ),
)


def _secret(keyring: Any, client_id: str) -> str:
    digest = hmac.new(
        keyring.get("oidc-kek"), f"demo client secret {client_id}".encode(), hashlib.sha256
    ).digest()
    return "demo-" + base64.urlsafe_b64encode(digest[:24]).decode()


async def load_oidc_demo(pool: Pool, _redis: aioredis.Redis, settings: Any, keyring: Any) -> list[str]:
    if not settings.is_development:
        return ["skipped: demo clients are only made outside production"]
    await key_store(pool, keyring, settings.oidc).ensure()
    lines = [f"OpenID issuer {issuer_of(settings)} (discovery at /.well-known/openid-configuration)"]
    for client in DEMO_CLIENTS:
        validate_registration(client, development=True, api_audience=api_audience_of(settings))
        secret = (
            _secret(keyring, str(client.client_id))
            if client.auth_method.startswith("client_secret")
            else None
        )
        await pool.execute(
            """
            INSERT INTO identity.oidc_clients
                (client_id, name, client_type, auth_method, secret_hash, redirect_uris,
                 post_logout_redirect_uris, grant_types, scopes, subject_type, sector_identifier, first_party,
                 backchannel_logout_uri, contacts)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (client_id) DO NOTHING
            """,
            client.client_id,
            client.name,
            client.client_type,
            client.auth_method,
            token_hash(secret) if secret else None,
            client.redirect_uris,
            client.post_logout_redirect_uris,
            sorted(set(client.grant_types)),
            sorted(set(client.scopes)),
            client.subject_type,
            client.sector_identifier,
            client.first_party,
            client.backchannel_logout_uri,
            client.contacts,
        )
        shown = (
            f", secret {secret} ({client.auth_method})" if secret else ", public client: PKCE S256, no secret"
        )
        lines.append(f"client {client.client_id} ({client.name}){shown}; redirect {client.redirect_uris[0]}")
    return lines
