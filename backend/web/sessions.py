"""The pages' server-side sessions (Redis) and their cookies.

The browser holds one random id per area in an HttpOnly, SameSite=Lax cookie (``Secure`` when the
public URL is https): ``citizen_web`` for ``/web`` and ``citizen_console`` for ``/console``, so a
citizen and an operator can be signed in side by side. Redis holds the rest under the id's
SHA-256 (a Redis dump gives no usable cookie): the tokens, the CSRF token of the session's forms,
the language. Sessions slide: each use extends them up to ``IDLE`` seconds. Signing in or out
moves the session to a new id and forgets the old one, so an id planted in a browser before the
sign-in (session fixation) never becomes a signed-in session.

A sign-in in progress (OpenID state, nonce, PKCE verifier, where to return) is kept apart under
its ``state`` for ``LOGIN_TTL`` seconds, bound to the session that started it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis

__all__ = [
    "CONSOLE_COOKIE",
    "IDLE",
    "LOGIN_TTL",
    "WEB_COOKIE",
    "PendingLogin",
    "SessionStore",
    "WebSession",
    "new_session_id",
]

WEB_COOKIE: Final = "citizen_web"
CONSOLE_COOKIE: Final = "citizen_console"
IDLE: Final = 8 * 3600
LOGIN_TTL: Final = 600


class WebSession(msgspec.Struct, kw_only=True):
    id: str = ""  # the cookie's value; not stored
    csrf: str
    lang: str = "zh-CN"
    kind: Literal["citizen", "operator"] | None = None
    # citizen: the provider's tokens (seconds since the epoch for the expiry)
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: float = 0.0
    id_token: str | None = None
    name: str | None = None
    # acting for an organisation: a token-exchange access token
    org_id: str | None = None
    org_name: str | None = None
    org_token: str | None = None
    org_expires_at: float = 0.0
    # operator: identity's operator session token and roles
    operator_token: str | None = None
    operator_name: str | None = None
    operator_roles: list[str] = msgspec.field(default_factory=list)
    flash: str | None = None

    def csrf_ok(self, submitted: str | None) -> bool:
        return bool(submitted) and hmac.compare_digest(self.csrf, submitted or "")

    def forget_sign_in(self) -> None:
        """Drops the tokens and renews the CSRF token; the id stays, so pages call
        ``Page.sign_out``, which also moves the session to a new id."""
        for field in (
            "kind", "access_token", "refresh_token", "id_token", "name", "org_id", "org_name",
            "org_token", "operator_token", "operator_name",
        ):  # fmt: skip
            setattr(self, field, None)
        self.expires_at = self.org_expires_at = 0.0
        self.operator_roles = []
        self.csrf = secrets.token_urlsafe(24)


class PendingLogin(msgspec.Struct, frozen=True, kw_only=True):
    session: str  # hash of the session id that started it
    verifier: str
    nonce: str
    return_to: str


def _key(session_id: str) -> str:
    return "web:s:" + hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def load(self, session_id: str | None) -> WebSession | None:
        if not session_id or len(session_id) > 128:
            return None
        raw = await self._redis.get(_key(session_id))
        if raw is None:
            return None
        session = msgspec.json.decode(raw, type=WebSession)
        session.id = session_id
        return session

    def new(self, lang: str) -> WebSession:
        return WebSession(id=new_session_id(), csrf=secrets.token_urlsafe(24), lang=lang)

    async def save(self, session: WebSession) -> None:
        stored = msgspec.structs.replace(session, id="")
        await self._redis.set(_key(session.id), msgspec.json.encode(stored), ex=IDLE)

    async def delete(self, session: WebSession) -> None:
        await self._redis.delete(_key(session.id))

    async def retire(self, session_id: str) -> None:
        """Forgets an id the session has moved away from (see ``Page.sign_out``)."""
        await self._redis.delete(_key(session_id))

    async def start_login(self, session: WebSession, login: PendingLogin, state: str) -> None:
        await self._redis.set("web:login:" + state, msgspec.json.encode(login), ex=LOGIN_TTL)

    async def finish_login(self, session: WebSession, state: str) -> PendingLogin | None:
        """The sign-in started by this session under ``state``, once (a replayed callback gets None)."""
        if not state or len(state) > 128:
            return None
        raw = await self._redis.getdel("web:login:" + state)
        if raw is None:
            return None
        login = msgspec.json.decode(raw, type=PendingLogin)
        return login if hmac.compare_digest(login.session, session_hash(session)) else None


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def session_hash(session: WebSession) -> str:
    return hashlib.sha256(session.id.encode()).hexdigest()
