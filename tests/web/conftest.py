"""The web pages over the app in-process: the demo data loaded (demo citizen with a card on the demo
phone, demo operator, the citizen page's OpenID client), a browser-like client that keeps cookies,
and the sign-in flows through the provider's real pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import hypothesis  # noqa: F401 - imported before any app's lifespan runs gc.freeze(); see below
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.db import create_pool
from backend.demo import load_demo
from backend.keyring import Keyring
from backend.settings import Settings
from identity.demo import DEMO_OPERATOR, _demo_password
from integrations.simulators.seed import DEMO_CITIZEN

# hypothesis is imported at the latest by its pytest plugin's terminal summary; trio (selenium's)
# then registers its PRNG, and hypothesis's check through gc.get_referrers cannot see objects that
# the app's lifespan moved to the permanent generation (gc.freeze) and warns, which is an error.

BASE = "http://127.0.0.1:8000"  # the test settings' public URL, hence the issuer and the redirect URI
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ACTION = re.compile(r'action="(/oidc/interaction/[^"/]+)/login"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


@pytest_asyncio.fixture
async def demo(
    settings_with_upstreams: Settings, keyring: Keyring, redis_client: aioredis.Redis
) -> list[str]:
    s = settings_with_upstreams
    assert s.database.url is not None
    pool = await create_pool(s.database, s.database.url.reveal())
    try:
        return await load_demo(pool, redis_client, s, keyring)
    finally:
        await pool.close()


@pytest.fixture
def app(settings_with_upstreams: Settings, keyring: Keyring, demo: list[str]) -> Litestar:
    return create_app(settings_with_upstreams, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def citizen_password(keyring: Keyring) -> str:
    return _demo_password(keyring, "citizen")


@pytest.fixture
def operator_password(keyring: Keyring) -> str:
    return _demo_password(keyring, "operator")


def path_of(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def provider_login(
    client: AsyncTestClient[Litestar], login_page: httpx.Response, password: str
) -> httpx.Response:
    """On the provider's login page: mobile and password, then back through the callback."""
    html = login_page.text
    action = _ACTION.search(html)
    assert action, html[:2000]
    response = await client.post(
        f"{action.group(1)}/login",
        data={
            "csrf": csrf_of(html),
            "method": "password",
            "mobile": DEMO_CITIZEN.mobile,
            "password": password,
        },
    )
    return response


async def sign_in(
    client: AsyncTestClient[Litestar], password: str, start: str = "/web/login"
) -> httpx.Response:
    """The whole code flow; the test client follows redirects, so this is the page returned to."""
    page = await client.get(start)
    assert "/oidc/interaction/" in str(page.url) or _ACTION.search(page.text), page.text[:2000]
    return await provider_login(client, page, password)


async def operator_sign_in(client: AsyncTestClient[Litestar], password: str) -> httpx.Response:
    page = await client.get("/console/login")
    response = await client.post(
        "/console/login",
        data={
            "csrf": csrf_of(page.text),
            "username": DEMO_OPERATOR,
            "password": password,
            "next": "/console/",
        },
    )
    return response


def demo_operator() -> str:
    return DEMO_OPERATOR


def as_text(response: Any) -> str:
    return str(response.text)
