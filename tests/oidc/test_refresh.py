"""Checklist 7 (refresh): bound to the client, rotated, reuse revokes the family, absolute
lifetime, and two parallel refreshes with one token: only one succeeds."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.identity.conftest import API, ZHANG, bearer
from tests.oidc.conftest import Kit, basic


async def _tokens(kit: Kit, partner: dict[str, Any]) -> dict[str, Any]:
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    response = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _refresh(kit: Kit, partner: dict[str, Any], token: str, **extra: str) -> Any:
    return await kit.client.post(
        "/oidc/token",
        data={"grant_type": "refresh_token", "refresh_token": token, **extra},
        headers=basic(partner["client_id"], partner["client_secret"]),
    )


async def test_rotation_and_reuse_revokes_the_family(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    first = await _tokens(kit, partner)
    second = await _refresh(kit, partner, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"] and "id_token" in rotated
    narrowed = await _refresh(kit, partner, rotated["refresh_token"], scope="openid")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "openid"
    latest = narrowed.json()["refresh_token"]
    widened = await _refresh(kit, partner, latest, scope="openid phone")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"
    # The refused widening consumed nothing: ``latest`` is still the family's current token.
    reuse = await _refresh(kit, partner, first["refresh_token"])  # an old token comes back
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # ... and the whole family is gone, including the newest token and its access tokens.
    assert (await _refresh(kit, partner, latest)).json()["error"] == "invalid_grant"
    access = narrowed.json()["access_token"]
    assert (
        await kit.client.get("/oidc/userinfo", headers={"Authorization": f"Bearer {access}"})
    ).status_code == 401


async def test_refresh_is_bound_to_its_client(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    other = await kit.register(name="Partner B")
    tokens = await _tokens(kit, partner)
    stolen = await _refresh(kit, other, tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await _refresh(kit, partner, tokens["refresh_token"])).status_code == 200  # not revoked by that


async def test_parallel_refreshes_with_one_token_succeed_once(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    tokens = await _tokens(kit, partner)
    results = await asyncio.gather(*(_refresh(kit, partner, tokens["refresh_token"]) for _ in range(8)))
    assert [r.status_code for r in results].count(200) == 1


async def test_absolute_lifetime_bounds_the_family(kit: Kit, redis_client: Any) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    tokens = await _tokens(kit, partner)
    family = tokens["refresh_token"].split(".")[0]
    gid = (await redis_client.get(f"oidc:rf:{family}")).decode()
    lifetime = kit.settings.oidc.refresh_token_ttl
    before = await redis_client.ttl(f"oidc:grant:{gid}")
    assert 0 < before <= lifetime
    rotated = (await _refresh(kit, partner, tokens["refresh_token"])).json()
    # Rotation does not extend the grant: the new token expires with the family.
    assert await redis_client.ttl(f"oidc:grant:{gid}") <= before
    assert await redis_client.ttl(f"oidc:rf:{rotated['refresh_token'].split('.')[0]}") <= before


async def test_garbage_refresh_tokens(kit: Kit) -> None:
    partner = await kit.register()
    for token in ("", "x", "a.b", "." * 300, "🙂.🙂"):
        response = await _refresh(kit, partner, token)
        assert response.status_code == 400 and response.json()["error"] in {
            "invalid_grant",
            "invalid_request",
        }


async def test_freezing_the_account_revokes_its_grants(kit: Kit) -> None:
    """Refresh reads no account status: freezing revokes the grants (and their access tokens)."""
    person = await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    tokens = await _tokens(kit, partner)
    auth = basic(partner["client_id"], partner["client_secret"])
    introspected = await kit.client.post(
        "/oidc/introspect", data={"token": tokens["access_token"]}, headers=auth
    )
    assert introspected.json()["active"] is True  # and now remembered by this worker
    frozen = await kit.client.post(
        f"{API}/admin/accounts/{person['account_id']}/freeze",
        json={"reason": "reported stolen phone"},
        headers=bearer(await kit.operator()),
    )
    assert frozen.status_code == 200, frozen.text
    refused = await _refresh(kit, partner, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    for token in (tokens["access_token"], tokens["refresh_token"]):
        answer = await kit.client.post("/oidc/introspect", data={"token": token}, headers=auth)
        assert answer.json() == {"active": False}
