"""Introspection (RFC 7662) and revocation (RFC 7009), both for identified clients; introspection
only for authenticated ones (RFC 7662 §2.1, §4): a public client (``none``) is ``invalid_client``.

A client learns about its own tokens and about access tokens naming it in ``aud`` (a resource
server); anything else is ``{"active": false}``. Revoking a refresh token ends its whole grant;
revoking an access token ends that token (and, bound to a grant, leaves the grant alone).
Revocation answers 200 whatever the token was (RFC 7009 §2.2).
"""

from __future__ import annotations

import time
from typing import Any

from identity.oidc import cors
from identity.oidc.endpoint import Answer, FormRequest, form_endpoint
from identity.oidc.errors import OAuthError
from identity.oidc.provider import Provider

__all__ = ["introspect", "revoke"]

_INACTIVE = Answer(b'{"active":false}')


async def introspection(oidc: Provider, request: FormRequest) -> Answer:
    """Introspection (RFC 7662)."""
    form = request.form
    client = await oidc.client_auth.authenticate(request.headers, form, request.address)
    if client.auth_method == "none":
        # Anyone can name a public client's id, so it proves nothing; RFC 7662 §2.1 and §4 require
        # the endpoint to be protected, else it is a token-scanning oracle.
        raise OAuthError("invalid_client", "only authenticated clients may introspect tokens", 401)
    token = form.get("token", "")
    if token.count(".") == 2:
        live = await oidc.access.check(token)
        if live is None:
            return _INACTIVE
        claims = live.claims
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("client_id") != client.client_id and client.client_id not in audiences:
            return _INACTIVE
        # RFC 9449 §6.2: a DPoP-bound token says so, with its key's thumbprint in cnf.
        body: dict[str, Any] = {"active": True, "token_type": "DPoP" if "cnf" in claims else "Bearer"}
        for name in (
            "scope",
            "client_id",
            "sub",
            "aud",
            "iss",
            "exp",
            "iat",
            "jti",
            "acr",
            "auth_time",
            "act",
            "cnf",
        ):
            if name in claims:
                body[name] = claims[name]
        return Answer(body)
    found = await oidc.grants.refresh_lookup(token)
    if found is None:
        return _INACTIVE
    _gid, ctx, ttl = found
    if ctx.client_id != client.client_id:
        return _INACTIVE
    now = int(time.time())
    owner = await oidc.clients.get(ctx.client_id)
    body = {
        "active": True,
        "token_type": "refresh_token",
        "client_id": ctx.client_id,
        "scope": " ".join(ctx.scope),
        "iss": oidc.issuer,
        "exp": now + ttl,
    }
    if ctx.account_id is not None and owner is not None:
        body["sub"] = oidc.tokens.subject(owner, ctx.account_id)
    return Answer(body)


async def revocation(oidc: Provider, request: FormRequest) -> Answer:
    """Revocation (RFC 7009)."""
    form = request.form
    client = await oidc.client_auth.authenticate(request.headers, form, request.address)
    token = form.get("token", "")
    if token.count(".") == 2:
        live = await oidc.access.check(token)
        if live is not None and live.claims.get("client_id") == client.client_id:
            await oidc.grants.revoke_access_token(str(live.claims["jti"]), int(live.claims["exp"]))
    else:
        found = await oidc.grants.refresh_lookup(token)
        if found is not None and found[1].client_id == client.client_id:
            await oidc.grants.revoke([found[0]], "revoked by the client")
    return Answer(b"", client_id=client.client_id)


# Introspection is for resource servers (RFC 7662 §2): no CORS. Revocation is also for browser apps
# signing a person out (cors.py).
introspect = form_endpoint("/oidc/introspect", introspection)
revoke = form_endpoint("/oidc/revoke", revocation, cors.REVOCATION)
