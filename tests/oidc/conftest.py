"""OpenID provider fixtures: the app with an https issuer, an operator who registers clients through
the admin API, people made through identity's API, and a browser that drives the HTML pages."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import hypothesis  # noqa: F401 - imported before trio registers its PRNG, else a HypothesisWarning at exit
import msgspec
import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.settings import Settings
from identity.admin.operators import create_operator
from identity.oidc.settings import OidcSettings
from identity.passwords import PasswordHasher
from identity.totp import totp
from tests.identity.conftest import API, Flows, bearer

ISSUER = "https://id.city.test"
REDIRECT = "https://partner-a.example/callback"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ACTION = re.compile(r'action="(/oidc/interaction/[^"/]+)/')


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def claims_of(jwt_token: str) -> dict[str, Any]:
    payload = jwt_token.split(".")[1]
    decoded: dict[str, Any] = msgspec.json.decode(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


BARE_CLIENT = "partner-a"


@pytest_asyncio.fixture
async def bare_account(db: Any) -> uuid.UUID:
    """An account row and a public client (``BARE_CLIENT``) straight in the database, for the
    stores' own tests (no app, no sign-in)."""
    account_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO identity.accounts (id, mobile_enc, mobile_index) VALUES ($1, $2, $3)",
        account_id,
        b"enc",
        account_id.bytes,
    )
    await db.execute(
        "INSERT INTO identity.oidc_clients (client_id, name, client_type, auth_method, grant_types, scopes) "
        "VALUES ($1, 'Partner A', 'public', 'none', '{authorization_code}', '{openid,profile,phone}')",
        BARE_CLIENT,
    )
    return account_id


@pytest.fixture
def oidc_settings(settings_with_upstreams: Settings) -> Settings:
    return settings_with_upstreams.replace(oidc=OidcSettings(issuer=ISSUER))


@pytest.fixture
def app(oidc_settings: Settings, keyring: Keyring) -> Litestar:
    return create_app(oidc_settings, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app, base_url=ISSUER) as test_client:
        yield test_client


@pytest.fixture
def flows(client: AsyncTestClient[Litestar]) -> Flows:
    return Flows(client)


class Kit:
    """An operator registering clients, and a browser signing people in through the pages."""

    def __init__(self, client: AsyncTestClient[Litestar], db: Any, settings: Settings) -> None:
        self.client = client
        self.db = db
        self.settings = settings
        self._operator: str | None = None
        self.flows = Flows(client)

    async def operator(self) -> str:
        if self._operator is None:
            hasher = PasswordHasher(self.settings.identity)
            await create_operator(
                self.db,
                hasher,
                username="sec-admin",
                display_name="Security",
                roles=["security_admin"],
                password="operator pass 1",
            )
            response = await self.client.post(
                f"{API}/operator-sessions", json={"username": "sec-admin", "password": "operator pass 1"}
            )
            assert response.status_code == 201, response.text
            self._operator = response.json()["token"]
        return self._operator

    async def register(self, **fields: Any) -> dict[str, Any]:
        body = {
            "name": "Partner A",
            "redirect_uris": [REDIRECT],
            "scopes": ["openid", "profile", "phone", "real_name", "organisations", "offline_access"],
            **fields,
        }
        response = await self.client.post(
            f"{API}/admin/oidc-clients", json=body, headers=bearer(await self.operator())
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def register_key_client(self, public_jwk: dict[str, Any]) -> str:
        """A client_credentials client that authenticates with private_key_jwt (RFC 7523) under
        ``public_jwk``, no secret; its id."""
        partner = await self.register(
            auth_method="private_key_jwt",
            jwks={"keys": [public_jwk]},
            grant_types=["client_credentials"],
            scopes=["profile"],
        )
        assert partner["client_secret"] is None
        client_id: str = partner["client_id"]
        return client_id

    async def assertion_grant(self, assertion: str) -> Any:
        """A client_credentials request authenticated by the client assertion alone."""
        return await self.client.post(
            "/oidc/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            },
        )

    async def authorize(
        self,
        client_id: str,
        *,
        scope: str = "openid profile",
        redirect_uri: str = REDIRECT,
        challenge: str | None = None,
        **extra: str,
    ) -> tuple[Any, str]:
        verifier, computed = pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": "st-" + secrets.token_hex(4),
            "nonce": "n-" + secrets.token_hex(4),
            "code_challenge": challenge or computed,
            "code_challenge_method": "S256",
            **extra,
        }
        params = {k: v for k, v in params.items() if v != ""}
        response = await self.client.get("/oidc/authorize", params=params, follow_redirects=False)
        return response, verifier

    async def follow(self, response: Any) -> Any:
        """Follow 303s inside the provider; stop at a page or at a redirect to a client."""
        while response.status_code in (302, 303) and response.headers["location"].startswith("/oidc/"):
            response = await self.client.get(response.headers["location"], follow_redirects=False)
        return response

    @staticmethod
    def form_of(page: Any) -> tuple[str, str]:
        html = page.text
        csrf, base = _CSRF.search(html), _ACTION.search(html)
        assert csrf and base, html
        return csrf.group(1), base.group(1)

    async def login_sms(self, page: Any, mobile: str) -> Any:
        csrf, base = self.form_of(page)
        sent = await self.client.post(f"{base}/send-code", data={"csrf": csrf, "mobile": mobile})
        assert sent.status_code == 200, sent.text
        code = await self.flows.latest_code(mobile)
        done = await self.client.post(
            f"{base}/login",
            data={"csrf": csrf, "method": "sms", "mobile": mobile, "code": code},
            follow_redirects=False,
        )
        assert done.status_code == 303, done.text
        return await self.follow(done)

    async def login_password(self, page: Any, mobile: str, password: str) -> Any:
        csrf, base = self.form_of(page)
        done = await self.client.post(
            f"{base}/login",
            data={"csrf": csrf, "method": "password", "mobile": mobile, "password": password},
            follow_redirects=False,
        )
        return await self.follow(done)

    async def totp(self, page: Any, secret: bytes) -> Any:
        csrf, base = self.form_of(page)
        step = int(time.time()) // 30
        done = await self.client.post(
            f"{base}/totp", data={"csrf": csrf, "code": totp(secret, step * 30 + 31)}, follow_redirects=False
        )
        return await self.follow(done)

    async def consent(self, page: Any, decision: str = "allow") -> Any:
        csrf, base = self.form_of(page)
        done = await self.client.post(
            f"{base}/consent", data={"csrf": csrf, "decision": decision}, follow_redirects=False
        )
        return await self.follow(done)

    async def sign_in(self, client_id: str, mobile: str, **extra: str) -> tuple[dict[str, str], str]:
        """Authorize, log in by SMS, consent if asked: the redirect's query and the PKCE verifier."""
        response, verifier = await self.authorize(client_id, **extra)
        page = await self.follow(response)
        if page.status_code == 200 and "/send-code" in page.text:
            page = await self.login_sms(page, mobile)
        if page.status_code == 200 and "/consent" in page.text:
            page = await self.consent(page)
        assert page.status_code == 303, page.text
        return query_of(page.headers["location"]), verifier

    async def tokens(
        self, client_id: str, secret: str | None, code: str, verifier: str, redirect_uri: str = REDIRECT
    ) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        headers = basic(client_id, secret) if secret else {}
        if not secret:
            data["client_id"] = client_id
        return await self.client.post("/oidc/token", data=data, headers=headers)


@pytest.fixture
def kit(client: AsyncTestClient[Litestar], db: Any, oidc_settings: Settings) -> Kit:
    return Kit(client, db, oidc_settings)
