"""An organisation access token from token exchange carries the roles held when it was issued; a
representative suspending the agent, removing them or taking the role away ends it at once
(identity/oidc/org_tokens.py), not when it expires. The person's own token stays good."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import redis.exceptions
from redis.asyncio import Redis

from identity.oidc.endpoint import PROVIDER_STATE_KEY
from identity.oidc.org_tokens import OrgTokens
from tests.identity.conftest import API, LI, bearer
from tests.identity.test_organisations import _company_with_agent, probe_cards
from tests.oidc.conftest import ISSUER, Kit, basic, claims_of
from tests.oidc.test_exchange_api import AT, EXCHANGE, probe_org

WHO = "/api/v1/identity/session"


async def _exchange(kit: Kit, web: dict[str, Any], subject: str, org_id: str) -> Any:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": subject,
        "subject_token_type": AT,
        "organisation": org_id,
        "scope": "card_admin",
        "audience": ISSUER + "/api",
    }
    return await kit.client.post(
        "/oidc/token",
        headers={
            **basic(web["client_id"], web["client_secret"]),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        content=urlencode(form),
    )


async def _city_web_signed_in(kit: Kit) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first-party web page (it may exchange for the API) and 李四's tokens from it."""
    web = await kit.register(
        name="City web page",
        first_party=True,
        grant_types=["authorization_code", "refresh_token", EXCHANGE],
        scopes=["openid", "profile", "organisations", "api"],
    )
    query, verifier = await kit.sign_in(web["client_id"], LI.mobile, scope="openid organisations api")
    person = (await kit.tokens(web["client_id"], web["client_secret"], query["code"], verifier)).json()
    return web, person


async def test_losing_the_role_ends_the_organisation_token(kit: Kit) -> None:
    kit.client.app.register(probe_org)
    org_id, boss, _agent, appointment = await _company_with_agent(kit.client, kit.flows)
    web, person = await _city_web_signed_in(kit)
    probe = f"/probe/oidc/cards/{org_id}"
    agent_url = f"{API}/organisations/{org_id}/agents/{appointment}"

    first = await _exchange(kit, web, person["access_token"], org_id)
    second = await _exchange(kit, web, person["access_token"], org_id)
    assert first.status_code == second.status_code == 200, first.text
    tokens = [first.json()["access_token"], second.json()["access_token"]]
    for token in tokens:
        assert (await kit.client.get(probe, headers=bearer(token))).status_code == 200

    suspended = await kit.client.patch(agent_url, json={"status": "suspended"}, headers=bearer(boss["token"]))
    assert suspended.status_code == 200, suspended.text
    for token in tokens:  # both, though issued before and still unexpired
        assert (await kit.client.get(probe, headers=bearer(token))).status_code == 401
    # The person is still themselves: their own token works; no new organisation token is issued.
    assert (await kit.client.get(WHO, headers=bearer(person["access_token"]))).status_code == 200
    refused = await _exchange(kit, web, person["access_token"], org_id)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"

    reinstated = await kit.client.patch(agent_url, json={"status": "active"}, headers=bearer(boss["token"]))
    assert reinstated.status_code == 200, reinstated.text
    again = await _exchange(kit, web, person["access_token"], org_id)
    assert again.status_code == 200, again.text
    token = again.json()["access_token"]
    assert (await kit.client.get(probe, headers=bearer(token))).status_code == 200
    removed = await kit.client.delete(agent_url, headers=bearer(boss["token"]))
    assert removed.status_code == 200, removed.text
    assert (await kit.client.get(probe, headers=bearer(token))).status_code == 401


class _RedisDownForOrgTokens:
    """The org-token set's Redis failing, everything else's working."""

    def __init__(self, real: Any) -> None:
        self.real = real

    async def zrangebyscore(self, *args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("Redis down (org tokens only)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_a_failed_revocation_does_not_undo_the_committed_change(kit: Kit) -> None:
    """The removal committed: it answers 200 and the agent's own sessions stop acting for the
    organisation even when revoking the organisation tokens fails (logged; they end at expiry)."""
    kit.client.app.register(probe_cards)
    org_id, boss, agent, appointment = await _company_with_agent(kit.client, kit.flows)
    switched = await kit.flows.act_for(agent["token"], org_id)
    assert switched.status_code == 200, switched.text
    probe = f"/probe/orgs/{org_id}/cards"
    assert (await kit.client.get(probe, headers=bearer(agent["token"]))).status_code == 200
    provider = kit.client.app.state[PROVIDER_STATE_KEY]
    provider.org_tokens.redis = _RedisDownForOrgTokens(provider.org_tokens.redis)
    try:
        removed = await kit.client.delete(
            f"{API}/organisations/{org_id}/agents/{appointment}", headers=bearer(boss["token"])
        )
    finally:
        provider.org_tokens.redis = provider.org_tokens.redis.real
    assert removed.status_code == 200, removed.text
    assert (await kit.client.get(probe, headers=bearer(agent["token"]))).status_code == 403


async def test_the_organisation_token_ends_with_the_appointment(kit: Kit) -> None:
    """An appointment ending in two minutes gives a token of at most two minutes, though access
    tokens live longer: its lapse is no agent change, so nothing would revoke the token."""
    org_id, _boss, _agent, appointment = await _company_with_agent(kit.client, kit.flows)
    ends = await kit.db.fetchval(
        "UPDATE identity.agents SET valid_until = now() + interval '120 seconds' WHERE id = $1 "
        "RETURNING valid_until",
        uuid.UUID(appointment),
    )
    web, person = await _city_web_signed_in(kit)
    assert person["expires_in"] > 120
    done = await _exchange(kit, web, person["access_token"], org_id)
    assert done.status_code == 200, done.text
    claims = claims_of(done.json()["access_token"])
    assert claims["exp"] <= int(ends.timestamp())
    assert 0 < done.json()["expires_in"] <= 120


async def test_the_set_lives_as_long_as_its_longest_token(redis_client: Redis) -> None:
    """A token remembered after another with a later expiry (a shorter access_token_ttl after a
    restart) must not shorten the set's life, or the first one could no longer be revoked."""
    revoked: list[str] = []

    async def revoke(jti: str, exp: int) -> None:
        revoked.append(jti)

    tokens = OrgTokens(redis_client, revoke)
    account, org = uuid.uuid4(), uuid.uuid4()
    now = int(time.time())
    await tokens.remember(account, org, "long", now + 600)
    await tokens.remember(account, org, "short", now + 60)
    assert await redis_client.ttl(f"oidc:orgat:{account}") > 60
    assert await tokens.revoke(account, org) == 2 and sorted(revoked) == ["long", "short"]
