"""UserInfo (OpenID Connect Core §5.3): GET, POST with the bearer header, POST with the token in
the form body (RFC 6750 §2.2). ``sub`` is the same (pairwise) subject as in the ID token.

A DPoP-bound token (RFC 9449 §7) is accepted only with the ``DPoP`` scheme and a proof by its key
for this request (``ath`` included); a bound token sent as Bearer, or an unbound one as DPoP, is
refused.

A request with no token at all gets 401 with bare challenges and no error code (RFC 6750 §3.1:
"If the request lacks any authentication information ... the resource server SHOULD NOT include an
error code"): ``Bearer realm="citizen"`` and the DPoP one with its algorithms (RFC 9449 §7.1)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from identity.oidc.claims import person_claims, wanted
from identity.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from identity.oidc.dpop import DPoPInvalid
from identity.oidc.errors import OAuthError
from identity.oidc.provider import Provider

__all__ = ["userinfo_get", "userinfo_post"]

Req = Request[Any, Any, Any]

_NO_CREDENTIALS = {
    "WWW-Authenticate": f'Bearer realm="citizen", DPoP realm="citizen", algs="{" ".join(DPOP_ALGORITHMS)}"',
    "Cache-Control": "no-store",
}


async def _userinfo(oidc: Provider, request: Req, scheme: str, token: str | None) -> Response[dict[str, Any]]:
    if not token:
        # RFC 6750 §3.1: no authentication at all, so no error code, only the challenges.
        return Response({}, status_code=401, headers=_NO_CREDENTIALS, media_type="application/json")
    live = await oidc.access.check(token)
    if live is None:
        raise OAuthError(
            "invalid_token", "the access token is invalid, expired or revoked", 401, www_auth=True
        )
    cnf = live.claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if bound is not None or scheme == "dpop":
        if bound is None or scheme != "dpop":
            raise OAuthError(
                "invalid_token",
                "a DPoP-bound token goes with the DPoP scheme, and only such a token",
                401,
                www_auth="DPoP",
            )
        try:
            jkt = await oidc.dpop.verify(
                request.headers.getall("dpop", []),
                method=request.method,
                url=oidc.url("userinfo"),
                access_token=token,
            )
        except DPoPInvalid as exc:
            raise OAuthError("invalid_dpop_proof", str(exc), 401, www_auth="DPoP") from None
        if jkt != bound:
            raise OAuthError("invalid_dpop_proof", "the proof is signed by another key", 401, www_auth="DPoP")
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
    names = wanted(scope, ctx.claims, allowed=client.scopes)
    claims.update(await person_claims(oidc.core, ctx.account_id, names))
    return Response(claims, headers={"Cache-Control": "no-store"}, media_type="application/json")


def _presented(request: Req) -> tuple[str, str | None]:
    """The scheme ("bearer" or "dpop") and the access token of the Authorization header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    return (scheme, token.strip()) if scheme in {"bearer", "dpop"} else ("bearer", None)


@get("/oidc/userinfo", operation_id="OidcUserinfo", tags=["oidc"])
async def userinfo_get(request: Req, oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    return await _userinfo(oidc, request, *_presented(request))


@post("/oidc/userinfo", operation_id="OidcUserinfoPost", tags=["oidc"], status_code=200)
async def userinfo_post(request: Req, oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    scheme, token = _presented(request)
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get("access_token")
        token = str(value) if value else None
    return await _userinfo(oidc, request, scheme, token)
