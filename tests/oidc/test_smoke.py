"""First end-to-end pass: register a partner, sign in by SMS with consent, exchange the code."""

from __future__ import annotations

from tests.identity.conftest import ZHANG
from tests.oidc.conftest import Kit, claims_of


async def test_code_flow_with_sms_login(kit: Kit) -> None:
    await kit.flows.register(ZHANG.mobile)
    partner = await kit.register()
    query, verifier = await kit.sign_in(partner["client_id"], ZHANG.mobile)
    assert query["iss"] == "https://id.city.test" and "code" in query
    response = await kit.tokens(partner["client_id"], partner["client_secret"], query["code"], verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert claims_of(body["id_token"])["aud"] == partner["client_id"]
