"""Failed client authentications are throttled per network address (identity-oidc.md: rate-limit
client authentication): past the limit the address gets 429 with Retry-After, whatever it sends;
a successful authentication costs no counter."""

from __future__ import annotations

from typing import Any

from identity.oidc.client_auth import FAILURE_LIMIT, FAILURE_WINDOW
from tests.oidc.conftest import Kit, basic

TOKEN = "/oidc/token"
FORM = {"grant_type": "client_credentials"}


async def test_failed_client_authentications_are_throttled_per_address(kit: Kit, redis_client: Any) -> None:
    partner = await kit.register(grant_types=["client_credentials"], scopes=["profile"])
    cid, secret = partner["client_id"], partner["client_secret"]
    ok = await kit.client.post(TOKEN, data=FORM, headers=basic(cid, secret))
    assert ok.status_code == 200, ok.text
    assert [k async for k in redis_client.scan_iter("oidc:authfail:*")] == []  # success counts nothing

    for _ in range(FAILURE_LIMIT):
        wrong = await kit.client.post(TOKEN, data=FORM, headers=basic(cid, secret + "x"))
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    [key] = [k async for k in redis_client.scan_iter("oidc:authfail:*")]
    assert 0 < await redis_client.ttl(key) <= FAILURE_WINDOW

    # The address is refused now, whatever it sends: the right secret too, and at the other endpoints.
    for attempt in (basic(cid, secret + "x"), basic(cid, secret)):
        refused = await kit.client.post(TOKEN, data=FORM, headers=attempt)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "invalid_client"
        assert 1 <= int(refused.headers["retry-after"]) <= FAILURE_WINDOW
        assert refused.headers["cache-control"] == "no-store"
    introspect = await kit.client.post("/oidc/introspect", data={"token": "x"}, headers=basic(cid, secret))
    assert introspect.status_code == 429
