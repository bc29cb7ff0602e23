"""Client authentication at the token, PAR, introspection and revocation endpoints.

``client_secret_basic`` and ``client_secret_post`` compare SHA-256 digests in constant time;
``private_key_jwt`` (RFC 7523) checks the assertion's signature against the client's registered
keys, ``iss`` = ``sub`` = client id, ``aud`` (this issuer only, as a single string: FAPI 2.0 Security
Profile §5.3.2.1 and the OpenID Foundation's January 2025 audience-injection advisory; an endpoint URL
or a list, even one naming the issuer, is refused), ``exp`` (required, at
most ``assertion_max_age`` ahead), ``iat`` and refuses a replayed ``jti`` (``SET NX`` until the
assertion expires, GHSA-3p3g-vpw6-4w66); ``none`` identifies a public client by ``client_id``.
A confidential client must use exactly its registered method.

Failed client authentications are counted per network address in Redis (shared by every worker):
past ``FAILURE_LIMIT`` in ``FAILURE_WINDOW`` seconds, the address is refused with 429 until the
window ends, without its credentials being looked at (identity-oidc.md: rate-limit client
authentication, as in the ZITADEL advisory). Only failures cost a Redis round trip; a worker
learns an address is blocked from the count its own failed attempt gets back, so an address may
try a few more times than the limit (one per worker), never more. Counting per address, not per
client id, keeps anyone from locking a genuine client out by failing in its name.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import secrets
import time
from collections.abc import Mapping
from urllib.parse import unquote

import jwt
import redis.asyncio as aioredis
from cryptography.hazmat.primitives.asymmetric import rsa

from identity.crypto import token_hash
from identity.oidc.clients import Client, ClientStore
from identity.oidc.errors import OAuthError
from identity.oidc.registration import MIN_RSA_BITS

__all__ = ["ASSERTION_ALGS", "ASSERTION_TYPE", "FAILURE_LIMIT", "FAILURE_WINDOW", "ClientAuthenticator"]

FAILURE_LIMIT = 30  # failed client authentications per address and window...
FAILURE_WINDOW = 60  # ...seconds
_BLOCKED_ADDRESSES = 10_000  # remembered per process at most (expired ones dropped first)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# FAPI 2.0 Security Profile §5.4: PS256, ES256 and EdDSA only (an RS256 assertion is refused),
# and RSA keys of at least 2048 bits (identity-oidc.md checklist).
ASSERTION_ALGS = ("ES256", "PS256", "EdDSA")


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def _throttled(seconds: float) -> OAuthError:
    wait = max(1, round(seconds + 0.5))
    return OAuthError(
        "invalid_client",
        "too many failed client authentications from this address",
        429,
        headers=(("Retry-After", str(wait)),),
    )


class ClientAuthenticator:
    def __init__(self, clients: ClientStore, redis: aioredis.Redis, *, issuer: str, max_age: int) -> None:
        self.clients = clients
        self.redis = redis
        self.issuer = issuer
        self.max_age = max_age
        self._blocked: dict[str, float] = {}  # address -> monotonic time its block ends

    async def authenticate(
        self, headers: Mapping[str, str], form: Mapping[str, str], address: str = ""
    ) -> Client:
        """The authenticated client; ``address``: the request's network address, when known."""
        if address:
            ends = self._blocked.get(address)
            if ends is not None:
                left = ends - time.monotonic()
                if left > 0:
                    raise _throttled(left)
                del self._blocked[address]
        try:
            return await self._authenticate(headers, form)
        except OAuthError as exc:
            if address and exc.error == "invalid_client":
                await self._count_failure(address)
            raise

    async def _count_failure(self, address: str) -> None:
        key = f"oidc:authfail:{address}"
        async with self.redis.pipeline(transaction=True) as pipe:
            _ = pipe.set(key, 0, ex=FAILURE_WINDOW, nx=True)  # queued, not awaited
            _ = pipe.incr(key)
            _ = pipe.pttl(key)
            _, count, ttl = await pipe.execute()
        if int(count) >= FAILURE_LIMIT:
            if len(self._blocked) >= _BLOCKED_ADDRESSES:
                now = time.monotonic()
                self._blocked = {a: e for a, e in self._blocked.items() if e > now}
                if len(self._blocked) >= _BLOCKED_ADDRESSES:
                    self._blocked.clear()
            self._blocked[address] = time.monotonic() + max(int(ttl), 1) / 1000

    async def _authenticate(self, headers: Mapping[str, str], form: Mapping[str, str]) -> Client:
        authorization = headers.get("authorization", "")
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._assertion(form)
        if authorization.lower().startswith("basic "):
            client_id, secret = self._basic(authorization[6:].strip())
            return await self._secret(client_id, secret, "client_secret_basic", form)
        if "client_secret" in form:
            return await self._secret(
                form.get("client_id", ""), form["client_secret"], "client_secret_post", form
            )
        client_id = form.get("client_id", "")
        client = await self.clients.get(client_id) if client_id else None
        if client is None:
            raise _invalid("unknown client or no client authentication")
        if client.auth_method != "none":
            raise _invalid(f"this client authenticates with {client.auth_method}")
        return client

    @staticmethod
    def _basic(encoded: str) -> tuple[str, str]:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _invalid("malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise _invalid("malformed Basic credentials")
        # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))

    async def _secret(self, client_id: str, secret: str, method: str, form: Mapping[str, str]) -> Client:
        if form.get("client_id") not in (None, client_id):
            raise _invalid("client_id does not match the credentials")
        client = await self.clients.get(client_id) if client_id else None
        expected = client.secret_hash if client is not None else None
        presented = token_hash(secret[:256])
        if client is None or expected is None or not secrets.compare_digest(expected, presented):
            raise _invalid("client authentication failed")
        if client.auth_method != method:
            raise _invalid(f"this client authenticates with {client.auth_method}")
        return client

    async def _assertion(self, form: Mapping[str, str]) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _invalid("client_assertion_type must be " + ASSERTION_TYPE)
        assertion = form.get("client_assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise _invalid("the client assertion is not a valid JWT") from None
        client_id = unverified.get("sub")
        if not isinstance(client_id, str) or unverified.get("iss") != client_id:
            raise _invalid("the assertion's iss and sub must both be the client id")
        if form.get("client_id") not in (None, client_id):
            raise _invalid("client_id does not match the assertion")
        client = await self.clients.get(client_id)
        if client is None or client.auth_method != "private_key_jwt" or client.jwks is None:
            raise _invalid("unknown client, or it does not use private_key_jwt")
        if header.get("alg") not in ASSERTION_ALGS:
            raise _invalid("assertion algorithm not allowed")
        key = self._client_key(client, header.get("kid"), header["alg"])
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=[header["alg"]],
                issuer=client_id,
                leeway=dt.timedelta(seconds=10),
                # aud is checked below: pyjwt accepts a list that contains the expected audience.
                options={"require": ["iss", "sub", "aud", "exp", "jti"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the client assertion has expired") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"the client assertion is not valid ({type(exc).__name__})") from None
        # FAPI 2.0 Security Profile §5.3.2.1: the issuer identifier as the sole value, a string (not
        # an endpoint URL, not an array), so an assertion made for another server cannot be replayed here.
        audience = claims["aud"]
        if not isinstance(audience, str) or audience != self.issuer:
            raise _invalid("the client assertion's aud must be this issuer, as a single string")
        now = dt.datetime.now(dt.UTC).timestamp()
        exp = float(claims["exp"])
        if exp - now > self.max_age:
            raise _invalid(f"the client assertion may live at most {self.max_age} s")
        if "iat" in claims and float(claims["iat"]) > now + 60:
            raise _invalid("the client assertion is issued in the future")
        jti = str(claims["jti"])
        key_name = f"oidc:jti:{client_id}:{hashlib.sha256(jti.encode()).hexdigest()}"
        fresh = await self.redis.set(key_name, b"1", nx=True, ex=max(int(exp - now) + 11, 1))
        if not fresh:
            raise _invalid("the client assertion's jti was already used")
        return client

    @staticmethod
    def _client_key(client: Client, kid: object, alg: str) -> jwt.PyJWK:
        assert client.jwks is not None
        candidates = [k for k in client.jwks.get("keys", []) if isinstance(k, dict)]
        if kid is not None:
            candidates = [k for k in candidates if k.get("kid") == kid]
        candidates = [k for k in candidates if k.get("alg") in (None, alg) and k.get("use") in (None, "sig")]
        if len(candidates) != 1:
            raise _invalid("no single registered key matches the assertion's kid")
        try:
            key = jwt.PyJWK(candidates[0], algorithm=alg)
        except jwt.PyJWTError:
            raise _invalid("the registered key does not fit the assertion's algorithm") from None
        if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
            raise _invalid(f"RSA client keys must have at least {MIN_RSA_BITS} bits")
        return key
