"""A pushed request's lifetime (RFC 9126): ``par_ttl`` bounds the wait before its first use, not
the login that follows; reopening it does not prolong it; it completes once, even in parallel.
``par_ttl`` is 1 s here, so a wait past it stays short; the interaction's 60 s are far longer than any
test step, and its end is brought about by expiring the key in Redis, not by waiting for it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backend.settings import Settings
from identity.oidc.pushed import PushedRequests
from identity.oidc.request import PAR_PREFIX
from identity.oidc.settings import OidcSettings
from tests.identity.conftest import ZHANG
from tests.oidc.conftest import ISSUER, REDIRECT, Kit, basic, pkce, query_of


@pytest.fixture
def oidc_settings(settings_with_upstreams: Settings) -> Settings:
    return settings_with_upstreams.replace(oidc=OidcSettings(issuer=ISSUER, par_ttl=1, interaction_ttl=60))


async def _push(kit: Kit, partner: dict[str, Any]) -> tuple[dict[str, str], str]:
    """A pushed request: the authorize parameters that name it, and the PKCE verifier."""
    verifier, challenge = pkce()
    form = {
        "response_type": "code",
        "client_id": partner["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "par-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    pushed = await kit.client.post(
        "/oidc/par", data=form, headers=basic(partner["client_id"], partner["client_secret"])
    )
    assert pushed.status_code == 201, pushed.text
    assert pushed.json()["expires_in"] == 1
    return {"client_id": partner["client_id"], "request_uri": pushed.json()["request_uri"]}, verifier


def _key(params: dict[str, str]) -> str:
    """The Redis key of a pushed request (``PushedRequests.key``)."""
    return PushedRequests.key(params["client_id"], params["request_uri"].removeprefix(PAR_PREFIX))


async def _gone(redis_client: Any, key: str) -> None:
    """Until Redis has expired ``key`` (it does so within a few ms of its TTL)."""
    while await redis_client.exists(key):
        await asyncio.sleep(0.05)


async def _open(kit: Kit, params: dict[str, str]) -> Any:
    return await kit.follow(await kit.client.get("/oidc/authorize", params=params, follow_redirects=False))


async def _finish(kit: Kit, page: Any) -> dict[str, str]:
    page = await kit.login_sms(page, ZHANG.mobile)
    if page.status_code == 200 and "/consent" in page.text:
        page = await kit.consent(page)
    assert page.status_code == 303, page.text
    return query_of(page.headers["location"])


async def test_a_slow_login_completes_after_par_ttl(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(require_par=True)
    params, verifier = await _push(kit, partner)
    page = await _open(kit, params)
    assert page.status_code == 200 and "/send-code" in page.text
    await asyncio.sleep(2)  # longer than par_ttl: the SMS code takes its time (60 s to log in)
    query = await _finish(kit, page)
    assert "code" in query and query["state"] == "par-state", query
    tokens = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert tokens.status_code == 200, tokens.text
    # Completed: the request_uri is gone.
    used = await kit.client.get("/oidc/authorize", params=params)
    assert used.status_code == 400 and "location" not in used.headers


async def test_par_ttl_still_bounds_the_first_use_and_reopening_does_not_prolong(
    kit: Kit, redis_client: Any
) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(require_par=True)
    params, _ = await _push(kit, partner)
    await _gone(redis_client, _key(params))  # never opened within par_ttl
    late = await kit.client.get("/oidc/authorize", params=params)
    assert late.status_code == 400 and "location" not in late.headers
    assert "invalid_request_uri" in late.text
    # Opened at once: it lives for the interaction's 60 s from that first use, and no longer.
    params, _ = await _push(kit, partner)
    assert (await _open(kit, params)).status_code == 200
    first = await redis_client.pttl(_key(params))
    assert 1_000 < first <= 60_000  # par_ttl's 1 s became the interaction's 60
    page = await _open(kit, params)  # reopened (a new interaction)
    assert page.status_code == 200 and "/send-code" in page.text
    assert await redis_client.pttl(_key(params)) <= first  # not prolonged by the reopening
    # Its 60 s from the first use run out (brought forward), though the reopening's have not.
    await redis_client.pexpire(_key(params), 1)
    await _gone(redis_client, _key(params))
    query = await _finish(kit, page)
    assert query.get("error") == "invalid_request" and "code" not in query, query


async def test_parallel_completions_of_one_request_uri_issue_one_code(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register(require_par=True)
    params, _ = await _push(kit, partner)
    assert "code" in await _finish(kit, await _open(kit, params))  # signed in and consented
    # Signed in now: each use of a new request_uri completes at once, and only one may.
    for _ in range(3):
        params, _ = await _push(kit, partner)
        answers = await asyncio.gather(
            *(kit.client.get("/oidc/authorize", params=params, follow_redirects=False) for _ in range(4))
        )
        outcomes = sorted(
            "code" if "code" in query_of(a.headers.get("location", "")) else str(a.status_code)
            for a in answers
        )
        assert outcomes.count("code") == 1, outcomes
        assert all(a.status_code in {303, 400} for a in answers)
