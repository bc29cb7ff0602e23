"""The citizen page as a relying party of the project's OpenID provider, over its HTTP endpoints.

Authorization code flow with PKCE (S256), a confidential client (``client_secret_basic``): the
discovery document names every endpoint; the ID token is checked against the provider's JWKS
(signature, issuer, audience, expiry, nonce); refresh tokens rotate; acting for an organisation
is a token exchange (RFC 8693); sign-out is RP-initiated logout with the ID token as hint.

The client is registered like any partner's: in development by the demo loader
(:func:`ensure_web_client`), which keeps its credentials beside the development keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import msgspec

from backend.web.upstream import Api, ApiError

__all__ = [
    "SCOPES",
    "ClientCredentials",
    "RelyingParty",
    "TokenSet",
    "client_id_for",
    "credentials_path",
    "ensure_web_client",
    "load_credentials",
    "pkce_pair",
]

SCOPES = "openid profile phone real_name organisations offline_access api"
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a grant type name
_ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
_ALGORITHMS = ("ES256", "RS256", "EdDSA")


class ClientCredentials(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str


class TokenSet(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    expires_in: int = 600
    refresh_token: str | None = None
    id_token: str | None = None
    scope: str | None = None

    @property
    def expires_at(self) -> float:
        return time.time() + self.expires_in


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def client_id_for(public_url: str) -> str:
    """One client per public address: redirect URIs are exact strings, so a new port is a new client."""
    return "citizen-web-" + hashlib.sha256(public_url.rstrip("/").encode()).hexdigest()[:10]


def credentials_path(data_dir: Path, client_id: str) -> Path:
    return Path(data_dir) / "keys" / f"oidc-client-{client_id}.json"


def load_credentials(data_dir: Path, public_url: str) -> ClientCredentials | None:
    path = credentials_path(data_dir, client_id_for(public_url))
    try:
        return msgspec.json.decode(path.read_bytes(), type=ClientCredentials)
    except FileNotFoundError:
        return None


async def ensure_web_client(pool: Any, settings: Any) -> list[str]:
    """Register the citizen page with the provider (development), keeping its secret in a 0600 file.

    Idempotent: a registered client with its credentials file is left alone; a client whose file
    is gone gets a new secret; a new database gets a new registration.
    """
    from identity.audit import AuditEvent, record
    from identity.oidc.clients import ClientRegistration, ClientStore
    from identity.oidc.wiring import api_audience_of

    if not settings.is_development:
        return ["skipped: the citizen page's client is registered by an operator in production"]
    base = settings.public_url.rstrip("/")
    client_id = client_id_for(base)
    path = credentials_path(settings.data_dir, client_id)
    store = ClientStore(pool, cache_ttl=0.0, development=True, api_audience=api_audience_of(settings))
    existing = {c.client_id for c in await store.list()}
    if client_id in existing and path.exists():
        return [f"citizen page: OpenID client {client_id} ({base}/web/)"]
    if client_id in existing:
        view = await store.rotate_secret(client_id)
        verb = "rotate_secret"
    else:
        view = await store.create(
            ClientRegistration(
                client_id=client_id,
                name="市民卡网页 Citizen card page",
                client_type="confidential",
                auth_method="client_secret_basic",
                redirect_uris=[f"{base}/web/callback"],
                post_logout_redirect_uris=[f"{base}/web/"],
                grant_types=["authorization_code", "refresh_token", _TOKEN_EXCHANGE],
                scopes=SCOPES.split(),
                first_party=True,
            )
        )
        verb = "create"
    async with pool.acquire() as connection:
        await record(
            connection,
            AuditEvent(
                action=f"identity.oidc.client.{verb}",
                actor_kind="system",
                target_kind="client",
                target_id=client_id,
                client_id="citizen-demo",
                details={"purpose": "citizen page", "redirect_uris": [f"{base}/web/callback"]},
            ),
        )
    assert view.client_secret is not None
    credentials = ClientCredentials(
        client_id=client_id,
        client_secret=view.client_secret,
        redirect_uri=f"{base}/web/callback",
        post_logout_redirect_uri=f"{base}/web/",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(msgspec.json.encode(credentials))
    return [f"citizen page: OpenID client {client_id} registered ({base}/web/)"]


class RelyingParty:
    def __init__(self, api: Api, issuer: str, data_dir: Path, public_url: str, api_audience: str) -> None:
        self._api = api
        self.issuer = issuer.rstrip("/")
        self._data_dir = data_dir
        self._public_url = public_url
        self.api_audience = api_audience  # what an organisation token is asked for (act_for)
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None

    def credentials(self) -> ClientCredentials:
        found = load_credentials(self._data_dir, self._public_url)
        if found is None:
            raise ApiError(503, {"detail": "the citizen page has no OpenID client (run `citizen demo`)"})
        return found

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            found = await self._api.call("GET", f"{self.issuer}/.well-known/openid-configuration")
            if not isinstance(found, dict) or found.get("issuer") != self.issuer:
                raise ApiError(502, {"detail": "the provider's discovery document names another issuer"})
            self._metadata = found
        return self._metadata

    async def authorization_url(self, *, state: str, nonce: str, challenge: str, lang: str) -> str:
        meta = await self.metadata()
        creds = self.credentials()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": creds.client_id,
                "redirect_uri": creds.redirect_uri,
                "scope": SCOPES,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "ui_locales": lang,
            }
        )
        return f"{meta['authorization_endpoint']}?{query}"

    async def _token(self, form: dict[str, str]) -> TokenSet:
        meta = await self.metadata()
        creds = self.credentials()
        answer = await self._api.call(
            "POST", meta["token_endpoint"], form=form, auth=(creds.client_id, creds.client_secret)
        )
        return msgspec.convert(answer, TokenSet)

    async def redeem(self, code: str, verifier: str) -> TokenSet:
        creds = self.credentials()
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": creds.redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenSet | None:
        """New tokens, or None when the grant is gone (expired, revoked, reused): sign in again."""
        try:
            return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        except ApiError as exc:
            if exc.status in {400, 401}:
                return None
            raise

    async def act_for(self, access_token: str, organisation: str) -> TokenSet:
        """A token for the API with the organisation as subject (RFC 8693, ``audience`` = the API)."""
        return await self._token(
            {
                "grant_type": _TOKEN_EXCHANGE,
                "subject_token": access_token,
                "subject_token_type": _ACCESS_TOKEN_TYPE,
                "organisation": organisation,
                "audience": self.api_audience,
            }
        )

    async def _keys(self, kid: str | None) -> jwt.PyJWKSet:
        if self._jwks is None or not any(k.get("kid") == kid for k in self._jwks.get("keys", [])):
            meta = await self.metadata()
            self._jwks = await self._api.call("GET", meta["jwks_uri"])
        return jwt.PyJWKSet.from_dict(self._jwks or {"keys": []})

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        if id_token.count(".") != 2:
            raise ApiError(502, {"detail": "the token answer has no ID token"})
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError as exc:
            raise ApiError(502, {"detail": f"the ID token is malformed ({exc})"}) from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in _ALGORITHMS:
            raise ApiError(502, {"detail": f"the ID token is signed with {alg!r}"})
        keys = await self._keys(kid)
        key = next((k for k in keys.keys if k.key_id == kid), None)
        if key is None:
            raise ApiError(502, {"detail": "the ID token's key is not in the provider's JWKS"})
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=[str(alg)],
                audience=self.credentials().client_id,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise ApiError(502, {"detail": f"the ID token was refused ({exc})"}) from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise ApiError(502, {"detail": "the ID token's nonce does not match this sign-in"})
        return claims

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        meta = await self.metadata()
        found = await self._api.call("GET", meta["userinfo_endpoint"], token=access_token)
        return found if isinstance(found, dict) else {}

    async def logout_url(self, id_token: str | None) -> str:
        meta = await self.metadata()
        creds = self.credentials()
        params = {"post_logout_redirect_uri": creds.post_logout_redirect_uri, "client_id": creds.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{meta['end_session_endpoint']}?{urlencode(params)}"

    async def revoke(self, token: str) -> None:
        meta = await self.metadata()
        creds = self.credentials()
        endpoint = meta.get("revocation_endpoint")
        if endpoint:
            await self._api.send(
                "POST", endpoint, form={"token": token}, auth=(creds.client_id, creds.client_secret)
            )


def decode_unverified(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded
