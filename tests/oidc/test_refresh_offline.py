"""Refresh tokens and offline_access (OpenID Connect Core §11): a client allowed the refresh grant
gets a refresh token either way, but without offline_access the grant, and so every refresh token
of its family, ends with the SSO session it was made in (by expiry or at logout); with
offline_access granted it keeps the full refresh lifetime and outlives the session."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from backend.settings import Settings
from identity.oidc.settings import OidcSettings
from tests.identity.conftest import ZHANG
from tests.oidc.conftest import ISSUER, Kit, basic, claims_of

SESSION_TTL = 5  # seconds: long enough to sign in twice, short enough to wait out


async def _tokens(kit: Kit, partner: dict[str, Any], scope: str) -> dict[str, Any]:
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile, scope=scope)
    response = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "refresh_token" in body  # issued with or without offline_access
    return body


async def _refresh(kit: Kit, partner: dict[str, Any], token: str) -> Any:
    return await kit.client.post(
        "/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=basic(partner["client_id"], partner["client_secret"]),
    )


async def _grant_id(redis_client: Any, refresh_token: str) -> str:
    gid: bytes = await redis_client.get(f"oidc:rf:{refresh_token.partition('.')[0]}")
    return gid.decode()


async def _recorded_expiry(kit: Kit, gid: str) -> float:
    expires = await kit.db.fetchval(
        "SELECT expires_at FROM identity.oidc_grants WHERE id = $1", uuid.UUID(gid)
    )
    return float(expires.timestamp())


class TestSessionExpiry:
    @pytest.fixture
    def oidc_settings(self, settings_with_upstreams: Settings) -> Settings:
        return settings_with_upstreams.replace(oidc=OidcSettings(issuer=ISSUER, sso_session_ttl=SESSION_TTL))

    async def test_only_offline_access_outlives_the_session(self, kit: Kit, redis_client: Any) -> None:
        await kit.flows.register(ZHANG.mobile)
        partner = await kit.register()
        online = await _tokens(kit, partner, "openid profile")
        offline = await _tokens(kit, partner, "openid profile offline_access")  # same session, consent again
        sid = claims_of(online["id_token"])["sid"]
        assert claims_of(offline["id_token"])["sid"] == sid
        session_ttl = await redis_client.pttl(f"oidc:sso:{sid}") / 1000
        assert 0 < session_ttl <= SESSION_TTL
        session_ends = time.time() + session_ttl

        # Without offline_access the grant lives as long as the session, in Redis and in PostgreSQL.
        online_gid = await _grant_id(redis_client, online["refresh_token"])
        assert 0 < await redis_client.ttl(f"oidc:grant:{online_gid}") <= session_ttl
        assert await _recorded_expiry(kit, online_gid) <= session_ends + 1
        # With it, the full refresh lifetime.
        offline_gid = await _grant_id(redis_client, offline["refresh_token"])
        lifetime = kit.settings.oidc.refresh_token_ttl
        assert lifetime - 60 < await redis_client.ttl(f"oidc:grant:{offline_gid}") <= lifetime
        assert await _recorded_expiry(kit, offline_gid) > time.time() + lifetime - 60

        # Within the session both refresh.
        online = (await _refresh(kit, partner, online["refresh_token"])).json()
        offline = (await _refresh(kit, partner, offline["refresh_token"])).json()
        assert "refresh_token" in online and "refresh_token" in offline

        deadline = time.time() + SESSION_TTL + 5
        while await redis_client.exists(f"oidc:sso:{sid}"):  # the session expires (no logout)
            assert time.time() < deadline, "the SSO session did not expire"
            await asyncio.sleep(0.2)
        while await redis_client.exists(f"oidc:grant:{online_gid}"):  # its TTL was set a moment later
            assert time.time() < deadline, "the grant did not expire with its session"
            await asyncio.sleep(0.05)

        ended = await _refresh(kit, partner, online["refresh_token"])
        assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant"
        auth = basic(partner["client_id"], partner["client_secret"])
        introspected = await kit.client.post(
            "/oidc/introspect", data={"token": online["access_token"]}, headers=auth
        )
        assert introspected.json() == {"active": False}  # its access tokens end with it

        kept = await _refresh(kit, partner, offline["refresh_token"])
        assert kept.status_code == 200, kept.text
        again = await _refresh(kit, partner, kept.json()["refresh_token"])  # and keeps rotating
        assert again.status_code == 200, again.text
        assert "id_token" in again.json()


async def test_logout_ends_the_refresh_tokens_of_the_session(kit: Kit) -> None:
    """Logout revokes every grant of the session, with offline_access too (as before)."""
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    online = await _tokens(kit, partner, "openid profile")
    offline = await _tokens(kit, partner, "openid offline_access")
    online = (await _refresh(kit, partner, online["refresh_token"])).json()
    assert "refresh_token" in online
    done = await kit.client.get("/oidc/logout", params={"id_token_hint": online["id_token"]})
    assert done.status_code == 200, done.text
    for family in (online, offline):
        refused = await _refresh(kit, partner, family["refresh_token"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_the_lifetime_rule() -> None:
    """``GrantStore.lifetime``: capped at the session's remaining life, never below a second."""
    from identity.oidc.grants import AuthContext, GrantStore

    store = GrantStore.__new__(GrantStore)
    store.grant_ttl = 30 * 86400
    online = AuthContext(client_id="c", scope=("openid",))
    offline = AuthContext(client_id="c", scope=("openid", "offline_access"))
    now = 1_000_000.0
    assert store.lifetime(online, 1_000_000 + 3600, now=now) == 3600
    assert store.lifetime(online, 1_000_000 + 3600, now=now + 0.5) == 3599  # rounded down
    assert store.lifetime(online, 1_000_000, now=now + 2) == 1  # a session ending now
    assert store.lifetime(online, 1_000_000 + 90 * 86400, now=now) == 30 * 86400  # never longer
    assert store.lifetime(offline, 1_000_000 + 3600, now=now) == 30 * 86400
    assert store.lifetime(online, None, now=now) == 30 * 86400  # no SSO session
