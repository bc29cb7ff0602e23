"""UserInfo (OpenID Connect Core §5.3): GET, POST with the bearer header, POST with the token in
the form body (RFC 6750 §2.2). ``sub`` is the same (pairwise) subject as in the ID token."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from identity.oidc.claims import person_claims, wanted
from identity.oidc.errors import OAuthError
from identity.oidc.provider import Provider

__all__ = ["userinfo_get", "userinfo_post"]

Req = Request[Any, Any, Any]


async def _userinfo(oidc: Provider, token: str | None) -> Response[dict[str, Any]]:
    if not token:
        raise OAuthError("invalid_request", "a bearer access token is required", 401, www_auth=True)
    live = await oidc.access.check(token)
    if live is None:
        raise OAuthError(
            "invalid_token", "the access token is invalid, expired or revoked", 401, www_auth=True
        )
    ctx = live.ctx
    if ctx is None or ctx.account_id is None or ctx.org is not None:
        raise OAuthError("invalid_token", "this access token does not represent a person", 401, www_auth=True)
    scope = tuple(str(live.claims.get("scope", "")).split())
    if "openid" not in scope:
        raise OAuthError("insufficient_scope", "the openid scope is required", 403, www_auth=True)
    client = await oidc.clients.get(ctx.client_id)
    if client is None:
        raise OAuthError("invalid_token", "the client is no longer registered", 401, www_auth=True)
    claims: dict[str, Any] = {"sub": oidc.tokens.subject(client, ctx.account_id)}
    claims.update(await person_claims(oidc.core, ctx.account_id, wanted(scope, ctx.claims)))
    return Response(claims, headers={"Cache-Control": "no-store"}, media_type="application/json")


def _bearer(request: Req) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


@get("/oidc/userinfo", operation_id="OidcUserinfo", tags=["oidc"])
async def userinfo_get(request: Req, oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    return await _userinfo(oidc, _bearer(request))


@post("/oidc/userinfo", operation_id="OidcUserinfoPost", tags=["oidc"], status_code=200)
async def userinfo_post(request: Req, oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    token = _bearer(request)
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get("access_token")
        token = str(value) if value else None
    return await _userinfo(oidc, token)
