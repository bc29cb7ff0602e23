"""Identity fixtures: the app wired to the real registry simulators, and helpers that drive it over HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings
from identity.admin.operators import create_operator
from identity.passwords import PasswordHasher
from identity.totp import totp
from integrations.simulators.seed import PEOPLE, SeedPerson

API = "/api/v1/identity"
_CODE = re.compile(r"(\d{6})")


@pytest.fixture
def identity_settings(settings_with_upstreams: Settings) -> Settings:
    return settings_with_upstreams


@pytest.fixture
def app(identity_settings: Settings, keyring: Keyring) -> Litestar:
    return create_app(identity_settings, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def operator_headers(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, role: str, *, prefix: str
) -> dict[str, str]:
    """Sign in a new operator ``<prefix>-<role>`` holding ``role``; their bearer headers."""
    username = f"{prefix}-{role.replace('_', '-')}"
    await create_operator(
        db,
        PasswordHasher(settings.identity),
        username=username,
        display_name=username,
        roles=[role],
        password="a long operator password 1",
    )
    response = await client.post(
        "/api/v1/identity/operator-sessions",
        json={"username": username, "password": "a long operator password 1"},
    )
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


class Flows:
    """The steps a citizen's app takes, over HTTP, reading codes from the development SMS endpoint."""

    def __init__(self, client: AsyncTestClient[Litestar]) -> None:
        self.client = client

    async def latest_code(self, mobile: str) -> str:
        response = await self.client.get(f"{API}/dev/sms", params={"mobile": mobile, "limit": 1})
        assert response.status_code == 200, response.text
        messages = response.json()
        assert messages, f"no SMS recorded for {mobile}"
        match = _CODE.search(messages[0]["text"])
        assert match is not None
        return match.group(1)

    async def send_code(self, mobile: str, purpose: str = "register") -> str:
        response = await self.client.post(f"{API}/codes", json={"mobile": mobile, "purpose": purpose})
        assert response.status_code == 202, response.text
        return await self.latest_code(mobile)

    async def register(self, mobile: str, password: str | None = None) -> dict[str, Any]:
        code = await self.send_code(mobile, "register")
        body: dict[str, Any] = {"mobile": mobile, "code": code}
        if password is not None:
            body["password"] = password
        response = await self.client.post(f"{API}/registrations", json=body)
        assert response.status_code == 201, response.text
        session: dict[str, Any] = response.json()
        return session

    async def verify(self, token: str, person: SeedPerson) -> dict[str, Any]:
        response = await self.client.post(
            f"{API}/me/verification",
            json={"name": person.name, "id_number": person.id_number},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()
        return session

    async def verified(self, person: SeedPerson, password: str | None = None) -> dict[str, Any]:
        """Registered and real-name verified (L2); returns the L2 session."""
        session = await self.register(person.mobile, password)
        return await self.verify(session["token"], person)

    async def enable_totp(self, token: str) -> tuple[bytes, dict[str, Any]]:
        import base64

        response = await self.client.post(f"{API}/me/totp", headers=bearer(token))
        assert response.status_code == 200, response.text
        encoded = response.json()["secret"]
        secret = base64.b32decode(encoded + "=" * (-len(encoded) % 8))
        response = await self.client.post(
            f"{API}/me/totp/confirm", json={"code": totp(secret, time.time())}, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        return secret, response.json()

    async def login_code(self, mobile: str) -> dict[str, Any]:
        code = await self.send_code(mobile, "login")
        response = await self.client.post(f"{API}/sessions/code", json={"mobile": mobile, "code": code})
        assert response.status_code == 201, response.text
        session: dict[str, Any] = response.json()
        return session

    async def act_for(self, token: str, organisation_id: str | None) -> Any:
        return await self.client.put(
            f"{API}/session/context", json={"organisation_id": organisation_id}, headers=bearer(token)
        )


@pytest.fixture
def flows(client: AsyncTestClient[Litestar]) -> Flows:
    return Flows(client)


ZHANG, LI, WANG, ZHAO, QIAN, SUN = PEOPLE
