"""The token endpoint (RFC 6749 §3.2): authorization_code, refresh_token, client_credentials and
token exchange (``exchange.py``). Every error is RFC 6749 JSON with ``no-store``; never a 500.

* A code is taken from Redis exactly once (GETDEL); it is bound to the client, the redirect URI and
  the PKCE challenge (S256; a verifier is always required). A second use answers ``invalid_grant``
  and revokes the grant, so every token issued from the code stops working.
* A refresh token rotates on every use (one Lua script); presenting a rotated one revokes the
  whole family. The grant's absolute lifetime bounds every refresh token of the family.
* A client allowed the refresh grant gets a refresh token with or without ``offline_access``
  (the app and partners refresh within a sign-in); ``offline_access`` decides how long it lasts:
  without it the grant, so its refresh tokens, ends with the SSO session it was made in; with it
  the grant keeps the full refresh lifetime (``GrantStore.lifetime``, OpenID Connect Core §11).
* DPoP (RFC 9449, ``dpop.py``): with a valid ``DPoP`` proof the access token is bound to the
  proof's key (``cnf.jkt``, ``token_type`` DPoP). A code requested with ``dpop_jkt`` is redeemed
  only with a proof by that key; a public client's grant stays bound to its key, so its refresh
  tokens are useless to anyone without the private key (§5).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec
from litestar import Request

from identity.oidc import cors
from identity.oidc.clients import Client
from identity.oidc.dpop import DPoPInvalid
from identity.oidc.endpoint import Answer, FormRequest, form_endpoint, read_form
from identity.oidc.errors import OAuthError
from identity.oidc.exchange import TOKEN_EXCHANGE, exchange
from identity.oidc.grants import Exchanged, RefreshOutcome
from identity.oidc.provider import Provider

__all__ = ["parse_form", "token_endpoint"]

Req = Request[Any, Any, Any]
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


async def parse_form(request: Req) -> dict[str, str]:
    """The form of a request handled by Litestar (PAR); the hot endpoints use ``endpoint.py``."""
    return read_form(request.headers.get("content-type", ""), await request.body())


def token_type(jkt: str | None) -> str:
    return "DPoP" if jkt is not None else "Bearer"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _authorization_code(
    oidc: Provider, client: Client, form: dict[str, str], jkt: str | None
) -> dict[str, Any]:
    code = form.get("code")
    if not code:
        raise OAuthError("invalid_request", "code is required")
    verifier = form.get("code_verifier", "")
    # "!" is never a challenge: a malformed verifier still consumes the code, and matches nothing.
    challenge = _s256(verifier) if _VERIFIER.match(verifier) else "!"
    outcome, record, refresh = await oidc.grants.exchange_code(
        code,
        client_id=client.client_id,
        redirect_uri=form.get("redirect_uri", ""),
        challenge=challenge,
        # Without offline_access too: the grant's lifetime, set at authorization, bounds it.
        with_refresh="refresh_token" in client.grant_types,
        jkt=jkt,
    )
    if record is None:
        raise OAuthError("invalid_grant", "the code is invalid or expired")
    if outcome is Exchanged.REUSED:
        await oidc.grants.revoke([record.gid], "authorization code reused")
        raise OAuthError("invalid_grant", "the code was already used; tokens issued from it are revoked")
    if record.client_id != client.client_id:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    if form.get("redirect_uri") != record.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
    if challenge == "!":
        raise OAuthError("invalid_grant", "code_verifier is required (43-128 unreserved characters)")
    if not secrets.compare_digest(challenge, record.code_challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    ctx = record.ctx
    if ctx.jkt is not None and ctx.jkt != jkt:
        raise OAuthError("invalid_dpop_proof", "the code is bound to another DPoP key (dpop_jkt)")
    if outcome is Exchanged.MISMATCH:
        raise OAuthError("invalid_grant", "the code is not bound to this request")
    if outcome is not Exchanged.ISSUED:
        raise OAuthError("invalid_grant", "the authorization was revoked")
    if jkt is not None and ctx.jkt is None and client.client_type == "public":
        # §5: a public client's refresh tokens are bound to the key of its first token request.
        ctx = msgspec.structs.replace(ctx, jkt=jkt)
        if not await oidc.grants.bind_key(record.gid, ctx):
            raise OAuthError("invalid_grant", "the authorization was revoked")
    access, _ = await oidc.tokens.access_token(client, ctx, gid=record.gid, scope=ctx.scope, jkt=jkt)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": token_type(jkt),
        "expires_in": oidc.settings.access_token_ttl,
        "scope": " ".join(ctx.scope),
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    if "openid" in ctx.scope:
        body["id_token"] = await oidc.tokens.id_token(client, ctx, nonce=record.nonce, access_token=access)
    return body


async def _refresh_token(
    oidc: Provider, client: Client, form: dict[str, str], jkt: str | None
) -> dict[str, Any]:
    if "refresh_token" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use refresh tokens")
    token = form.get("refresh_token")
    if not token:
        raise OAuthError("invalid_request", "refresh_token is required")
    if "scope" in form or client.client_type == "public":
        # Checked before rotating, so a refused request consumes nothing: a narrowing only, and a
        # public client's key-bound refresh token only with a proof by that key (RFC 9449 §5).
        current = await oidc.grants.refresh_lookup(token)
        if (
            current is not None
            and "scope" in form
            and not set(form["scope"].split()) <= set(current[1].scope)
        ):
            raise OAuthError("invalid_scope", "a refresh may only narrow the scope")
        if current is not None and current[1].jkt is not None and current[1].jkt != jkt:
            raise OAuthError("invalid_dpop_proof", "this refresh token is bound to another DPoP key")
    outcome, gid, ctx, new_token, _remaining = await oidc.grants.refresh(token, client.client_id)
    if outcome is RefreshOutcome.REUSED:
        assert gid is not None
        await oidc.grants.revoke([gid], "refresh token reused")
        raise OAuthError("invalid_grant", "the refresh token was already used; the whole grant is revoked")
    if outcome is not RefreshOutcome.ROTATED or ctx is None or gid is None:
        raise OAuthError("invalid_grant", "the refresh token is invalid, expired or revoked")
    scope = ctx.scope
    if "scope" in form:
        narrowed = tuple(dict.fromkeys(form["scope"].split()))
        if not set(narrowed) <= set(scope):
            raise OAuthError("invalid_scope", "a refresh may only narrow the scope")
        scope = narrowed
    # No account check here: freezing or deactivating an account revokes its grants
    # (``GrantStore.revoke_account``, hooked into identity's revoke_all), so a live family is
    # an active account's.
    access, _ = await oidc.tokens.access_token(client, ctx, gid=gid, scope=scope, jkt=jkt)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": token_type(jkt),
        "expires_in": oidc.settings.access_token_ttl,
        "scope": " ".join(scope),
        "refresh_token": new_token,
    }
    if "openid" in scope and ctx.account_id is not None:
        body["id_token"] = await oidc.tokens.id_token(client, ctx, nonce=None, access_token=access)
    return body


async def _client_credentials(
    oidc: Provider, client: Client, form: dict[str, str], jkt: str | None
) -> dict[str, Any]:
    if client.client_type != "confidential" or "client_credentials" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use client_credentials")
    requested = tuple(dict.fromkeys(form.get("scope", "").split()))
    allowed = tuple(s for s in client.scopes if s not in {"openid", "offline_access"})
    scope = requested or allowed
    if not set(scope) <= set(allowed):
        raise OAuthError("invalid_scope", "a requested scope is not allowed for this client")
    from identity.oidc.grants import AuthContext

    access, _ = await oidc.tokens.access_token(
        client, AuthContext(client_id=client.client_id, scope=scope), gid=None, scope=scope, jkt=jkt
    )
    return {
        "access_token": access,
        "token_type": token_type(jkt),
        "expires_in": oidc.settings.access_token_ttl,
        "scope": " ".join(scope),
    }


_GRANTS = {
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
    "client_credentials": _client_credentials,
    TOKEN_EXCHANGE: exchange,
}


async def token(oidc: Provider, request: FormRequest) -> Answer:
    """The token endpoint."""
    form = request.form
    client = await oidc.client_auth.authenticate(request.headers, form, request.address)
    grant_type = form.get("grant_type", "")
    handler = _GRANTS.get(grant_type)
    if handler is None:
        raise OAuthError("unsupported_grant_type", "grant_type is missing or not supported")
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", f"this client may not use {grant_type}")
    jkt = await proof_key(oidc, request.proofs, "token", required=client.dpop_bound_access_tokens)
    return Answer(await handler(oidc, client, form, jkt), client_id=client.client_id)


token_endpoint = form_endpoint("/oidc/token", token, cors.TOKEN)


async def proof_key(oidc: Provider, proofs: Sequence[str], endpoint: str, *, required: bool) -> str | None:
    """The thumbprint of the request's DPoP proof key (RFC 9449 §5), or None without a proof;
    ``invalid_dpop_proof`` for a bad proof, or for none when ``required``."""
    if not proofs:
        if required:
            raise OAuthError("invalid_dpop_proof", "this client must send a DPoP proof")
        return None
    try:
        return await oidc.dpop.verify(proofs, method="POST", url=oidc.url(endpoint))
    except DPoPInvalid as exc:
        raise OAuthError("invalid_dpop_proof", str(exc)) from None
