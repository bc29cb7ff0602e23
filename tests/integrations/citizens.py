"""Citizens for the entrance tests, made over HTTP the way the app makes them (identity's and
card's public API; codes read from the development SMS endpoint)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from integrations.simulators.seed import SeedEnterprise, SeedPerson

API = "/api/v1/identity"
_CODE = re.compile(r"(\d{6})")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Citizens:
    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client

    async def _code(self, mobile: str, purpose: str) -> str:
        sent = await self.client.post(f"{API}/codes", json={"mobile": mobile, "purpose": purpose})
        assert sent.status_code == 202, sent.text
        found = await self.client.get(f"{API}/dev/sms", params={"mobile": mobile, "limit": 1})
        match = _CODE.search(found.json()[0]["text"])
        assert match is not None
        return match.group(1)

    async def registered(self, person: SeedPerson) -> str:
        """An L1 session (mobile confirmed)."""
        code = await self._code(person.mobile, "register")
        body = {"mobile": person.mobile, "code": code}
        response = await self.client.post(f"{API}/registrations", json=body)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    async def verified(self, person: SeedPerson, *, card: bool = False) -> dict[str, Any]:
        """An L2 session (real name checked against the population registry), with a card if asked."""
        token = await self.registered(person)
        response = await self.client.post(
            f"{API}/me/verification",
            json={"name": person.name, "id_number": person.id_number},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        if card:
            issued = await self.client.post("/api/v1/cards", headers=bearer(session["token"]))
            assert issued.status_code == 201, issued.text
        return session

    async def organisation(self, token: str, enterprise: SeedEnterprise) -> str:
        response = await self.client.post(
            f"{API}/organisations",
            json={"credit_code": enterprise.credit_code, "name": enterprise.name, "kind": enterprise.kind},
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        org_id: str = response.json()["id"]
        return org_id

    async def appoint(
        self, token: str, org_id: str, person: SeedPerson, roles: list[str], agent_token: str
    ) -> None:
        """The representative (``token``) invites the person, who (``agent_token``) accepts."""
        ends = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)).isoformat()
        response = await self.client.post(
            f"{API}/organisations/{org_id}/agents",
            json={"id_number": person.id_number, "name": person.name, "roles": roles, "ends_on": ends},
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        accepted = await self.client.post(
            f"{API}/organisations/{org_id}/invitation/accept", headers=bearer(agent_token)
        )
        assert accepted.status_code == 200, accepted.text

    async def act_for(self, token: str, org_id: str | None) -> Any:
        return await self.client.put(
            f"{API}/session/context", json={"organisation_id": org_id}, headers=bearer(token)
        )

    async def home(self, token: str, **params: str) -> dict[str, Any]:
        response = await self.client.get("/api/v1/home", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


def tiles(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {tile["id"]: tile for tile in page["tiles"]}
