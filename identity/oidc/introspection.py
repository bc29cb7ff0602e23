"""Introspection (RFC 7662) and revocation (RFC 7009), both for authenticated clients only.

A client learns about its own tokens and about access tokens naming it in ``aud`` (a resource
server); anything else is ``{"active": false}``. Revoking a refresh token ends its whole grant;
revoking an access token ends that token (and, bound to a grant, leaves the grant alone).
Revocation answers 200 whatever the token was (RFC 7009 §2.2).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from identity.oidc.provider import Provider
from identity.oidc.token import parse_form

__all__ = ["introspect", "revoke"]

Req = Request[Any, Any, Any]
_INACTIVE = {"active": False}


@post("/oidc/introspect", operation_id="OidcIntrospect", tags=["oidc"], status_code=200)
async def introspect(request: Req, oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    form = await parse_form(request)
    client = await oidc.client_auth.authenticate(request.headers, form)
    token = form.get("token", "")
    headers = {"Cache-Control": "no-store"}
    if token.count(".") == 2:
        live = await oidc.access.check(token)
        if live is None:
            return Response(_INACTIVE, headers=headers)
        claims = live.claims
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("client_id") != client.client_id and client.client_id not in audiences:
            return Response(_INACTIVE, headers=headers)
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
        return Response(body, headers=headers)
    found = await oidc.grants.refresh_lookup(token)
    if found is None:
        return Response(_INACTIVE, headers=headers)
    _gid, ctx, ttl = found
    if ctx.client_id != client.client_id:
        return Response(_INACTIVE, headers=headers)
    import time

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
    return Response(body, headers=headers)


@post("/oidc/revoke", operation_id="OidcRevoke", tags=["oidc"], status_code=200)
async def revoke(request: Req, oidc: NamedDependency[Provider]) -> Response[None]:
    form = await parse_form(request)
    client = await oidc.client_auth.authenticate(request.headers, form)
    token = form.get("token", "")
    if token.count(".") == 2:
        live = await oidc.access.check(token)
        if live is not None and live.claims.get("client_id") == client.client_id:
            await oidc.grants.revoke_access_token(str(live.claims["jti"]), int(live.claims["exp"]))
    else:
        found = await oidc.grants.refresh_lookup(token)
        if found is not None and found[1].client_id == client.client_id:
            await oidc.grants.revoke([found[0]], "revoked by the client")
    return Response(None, status_code=200, headers={"Cache-Control": "no-store"})
