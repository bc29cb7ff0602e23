"""Single sign-on sessions: one per browser or device, in Redis, named by a MAC'd cookie.

The cookie is ``<sid>.<HMAC-SHA256(session key, "sso|" + sid), 128 bits>``: it carries no data,
and a forged or ended session id is refused. ``oidc:sso:<sid>`` holds the session (JSON) with the
identity bearer session it was opened with (sealed with AES-GCM, so a Redis dump yields no usable
token); ``oidc:sso-clients:<sid>`` the clients that received tokens in it (for back-channel logout);
``oidc:sso-acct:<account>`` the person's session ids (for "my sessions"). Ending a session takes
all three in one script, so two parallel logouts notify each client once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.redis_reads import reads_of

__all__ = ["COOKIE", "SignIn", "SsoSession", "SsoStore"]

COOKIE = "citizen_sso"

_END = """
local v = redis.call('GET', KEYS[1])
if not v then return {0, '', {}} end
local clients = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return {1, v, clients}
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SsoSession(msgspec.Struct, frozen=True, kw_only=True):
    sid: uuid.UUID
    account_id: uuid.UUID
    loa: int
    amr: tuple[str, ...]
    auth_time: int
    created_at: int
    expires_at: int
    identity_session_id: uuid.UUID
    identity_token_sealed: bytes
    user_agent: str | None = None
    address: str | None = None
    # Moves on at every authentication within the session (the same person signing in again, a
    # step-up): the browser gets a new cookie and earlier cookies of the session stop working
    # (ASVS 3.2.1, a new session token at authentication), while the sid, which clients hold in
    # their ID tokens and back-channel logout names, stays. 0: the cookie of the session's start.
    epoch: int = 0


class SignIn(msgspec.Struct, frozen=True, kw_only=True):
    """An authentication that opens or renews a browser's SSO session."""

    account_id: uuid.UUID
    loa: int
    amr: tuple[str, ...]
    identity_session_id: uuid.UUID
    identity_token: str
    user_agent: str | None
    address: str | None


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    session_id: uuid.UUID
    loa: int
    amr: list[str]
    authenticated_at: int
    created_at: int
    expires_at: int
    user_agent: str | None
    address: str | None
    clients: list[str]
    current: bool = False


_dec = msgspec.json.Decoder(SsoSession)
_enc = msgspec.json.Encoder()


class SsoStore:
    def __init__(self, redis: aioredis.Redis, session_key: bytes, *, ttl: int) -> None:
        self.redis = redis
        self._mac_key = hmac.new(session_key, b"citizen sso cookie", hashlib.sha256).digest()
        self._seal = AESGCM(hmac.new(session_key, b"citizen sso token seal", hashlib.sha256).digest())
        self.ttl = ttl
        self._end = redis.register_script(_END)

    # -- cookie ---------------------------------------------------------------------------------

    def _mac(self, sid: uuid.UUID, epoch: int = 0) -> str:
        data = b"sso|" + sid.bytes + (b"|%d" % epoch if epoch else b"")
        mac = hmac.new(self._mac_key, data, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def cookie_value(self, sid: uuid.UUID, epoch: int = 0) -> str:
        """``sid.mac`` for a session's first cookie, ``sid.epoch.mac`` after a re-authentication."""
        return f"{sid}.{epoch}.{self._mac(sid, epoch)}" if epoch else f"{sid}.{self._mac(sid)}"

    def parse_cookie_epoch(self, value: str | None) -> tuple[uuid.UUID, int] | None:
        """The session id and epoch a cookie names, if its MAC is ours."""
        if not value or len(value) > 100:
            return None
        parts = value.split(".")
        if len(parts) == 2:
            (raw_sid, mac), epoch = parts, 0
        elif len(parts) == 3 and parts[1].isdigit() and 0 < len(parts[1]) <= 9 and parts[1][0] != "0":
            raw_sid, mac, epoch = parts[0], parts[2], int(parts[1])
        else:
            return None
        try:
            sid = uuid.UUID(raw_sid)
        except ValueError:
            return None
        return (sid, epoch) if secrets.compare_digest(mac, self._mac(sid, epoch)) else None

    def parse_cookie(self, value: str | None) -> uuid.UUID | None:
        parsed = self.parse_cookie_epoch(value)
        return None if parsed is None else parsed[0]

    # -- sealing of the identity token -------------------------------------------------------------

    def seal(self, sid: uuid.UUID, token: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._seal.encrypt(nonce, token.encode(), sid.bytes)

    def unseal(self, session: SsoSession) -> str | None:
        blob = session.identity_token_sealed
        try:
            return self._seal.decrypt(blob[:12], blob[12:], session.sid.bytes).decode()
        except InvalidTag:
            return None

    # -- sessions --------------------------------------------------------------------------------

    async def create(self, sign_in: SignIn) -> SsoSession:
        sid = uuid.uuid4()
        now = int(time.time())
        session = SsoSession(
            sid=sid,
            account_id=sign_in.account_id,
            loa=sign_in.loa,
            amr=sign_in.amr,
            auth_time=now,
            created_at=now,
            expires_at=now + self.ttl,
            identity_session_id=sign_in.identity_session_id,
            identity_token_sealed=self.seal(sid, sign_in.identity_token),
            user_agent=sign_in.user_agent,
            address=sign_in.address,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            _ = pipe.set(f"oidc:sso:{sid}", _enc.encode(session), ex=self.ttl)
            _ = pipe.sadd(f"oidc:sso-acct:{sign_in.account_id}", str(sid))
            _ = pipe.expire(f"oidc:sso-acct:{sign_in.account_id}", self.ttl)
            await pipe.execute()
        return session

    async def get(self, sid: uuid.UUID | None) -> SsoSession | None:
        if sid is None:
            return None
        # The lean connection when the app has one (backend.redis_reads): every authorization reads it.
        raw = await reads_of(self.redis).call("GET", f"oidc:sso:{sid}")
        return None if raw is None else _dec.decode(raw)

    async def raise_level(
        self, session: SsoSession, *, loa: int, amr: tuple[str, ...], identity_token: str
    ) -> SsoSession:
        """Step-up within the session: a new authentication time, level and sealed token."""
        updated, _ = await self._authenticated(session, identity_token, loa=loa, amr=amr)
        return updated

    async def reauthenticate(self, session: SsoSession, sign_in: SignIn) -> SsoSession | None:
        """The same person signed in again (``prompt=login``, ``max_age``, ``select_account``): the
        session keeps its id, its clients and so its grants (OpenID Connect Core §3.1.2.1 asks for a
        new authentication, not a logout), with the new authentication's time, level, methods and
        identity session. None if the session ended meanwhile (the caller opens a new one)."""
        updated, kept = await self._authenticated(
            session,
            sign_in.identity_token,
            loa=sign_in.loa,
            amr=sign_in.amr,
            identity_session_id=sign_in.identity_session_id,
            user_agent=sign_in.user_agent,
            address=sign_in.address,
        )
        return updated if kept else None

    async def _authenticated(
        self, session: SsoSession, identity_token: str, **changes: Any
    ) -> tuple[SsoSession, bool]:
        """``session`` after an authentication within it: ``changes``, the new time and sealed
        token, and the next cookie epoch (earlier cookies retire); whether it was still there."""
        updated = msgspec.structs.replace(
            session,
            **changes,
            auth_time=int(time.time()),
            identity_token_sealed=self.seal(session.sid, identity_token),
            epoch=session.epoch + 1,
        )
        kept = await self.redis.set(f"oidc:sso:{session.sid}", _enc.encode(updated), xx=True, keepttl=True)
        return updated, bool(kept)

    @staticmethod
    def clients_key(sid: uuid.UUID) -> str:
        """The set of clients that got a code in this session (``GrantStore.start`` adds to it)."""
        return f"oidc:sso-clients:{sid}"

    async def end(
        self, sid: uuid.UUID, account_id: uuid.UUID | None = None
    ) -> tuple[SsoSession, list[str]] | None:
        """Take the session away (once); returns it and the clients to notify."""
        if account_id is None:
            current = await self.get(sid)
            if current is None:
                return None
            account_id = current.account_id
        found, raw, clients = await self._end(
            keys=[f"oidc:sso:{sid}", f"oidc:sso-clients:{sid}", f"oidc:sso-acct:{account_id}"],
            args=[str(sid)],
        )
        if not int(found):
            return None
        session = _dec.decode(raw)
        if session.account_id != account_id:  # pragma: no cover - the key names come from the same sid
            return None
        return session, sorted(c.decode() for c in clients)

    async def list_for(self, account_id: uuid.UUID, current: uuid.UUID | None = None) -> list[SessionView]:
        members = await self.redis.smembers(f"oidc:sso-acct:{account_id}")
        sids = [_text(s) for s in members]
        views = []
        for sid in sorted(sids):
            raw = await self.redis.get(f"oidc:sso:{sid}")
            if raw is None:
                await self.redis.srem(f"oidc:sso-acct:{account_id}", sid)
                continue
            s = _dec.decode(raw)
            used = await self.redis.smembers(f"oidc:sso-clients:{sid}")
            clients = sorted(_text(c) for c in used)
            views.append(
                SessionView(
                    session_id=s.sid,
                    loa=s.loa,
                    amr=list(s.amr),
                    authenticated_at=s.auth_time,
                    created_at=s.created_at,
                    expires_at=s.expires_at,
                    user_agent=s.user_agent,
                    address=s.address,
                    clients=clients,
                    current=s.sid == current,
                )
            )
        return views
