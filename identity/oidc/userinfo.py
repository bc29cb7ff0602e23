"""UserInfo (OpenID Connect Core §5.3): GET, POST with the bearer header, POST with the token in
the form body (RFC 6750 §2.2). ``sub`` is the same (pairwise) subject as in the ID token.

A DPoP-bound token (RFC 9449 §7) is accepted only with the ``DPoP`` scheme and a proof by its key
for this request (``ath`` included); a bound token sent as Bearer, or an unbound one as DPoP, is
refused.

A request with no token at all gets 401 with bare challenges and no error code (RFC 6750 §3.1:
"If the request lacks any authentication information ... the resource server SHOULD NOT include an
error code"): ``Bearer realm="citizen"`` and the DPoP one with its algorithms (RFC 9449 §7.1).

CORS (``cors.py``): an answer, error or not, allows the request's origin when the client the
access token was issued to allows it; with no valid token, when any active client does. A 401's
``WWW-Authenticate`` is exposed to the script: RFC 6750 §3 puts the error there."""

from __future__ import annotations

from typing import Any

from litestar import HttpMethod, MediaType, Request, Response, get, post, route
from litestar.di import NamedDependency

from identity.oidc.access import LiveToken
from identity.oidc.claims import person_claims, wanted
from identity.oidc.cors import USERINFO
from identity.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from identity.oidc.dpop import DPoPInvalid
from identity.oidc.errors import OAuthError, oauth_error_response
from identity.oidc.provider import Provider

__all__ = ["userinfo_get", "userinfo_options", "userinfo_post"]

Req = Request[Any, Any, Any]

_NO_CREDENTIALS = {
    "WWW-Authenticate": f'Bearer realm="citizen", DPoP realm="citizen", algs="{" ".join(DPOP_ALGORITHMS)}"',
    "Cache-Control": "no-store",
}


async def _answer(oidc: Provider, request: Req, scheme: str, token: str | None) -> Response[Any]:
    live = await oidc.access.check(token) if token else None
    response: Response[Any]
    try:
        response = await _userinfo(oidc, request, scheme, token, live)
    except OAuthError as exc:  # answered here rather than by the router's handler: CORS headers too
        response = oauth_error_response(request, exc)
    origin = request.headers.get("origin")
    if origin is not None:
        named = live.claims.get("client_id") if live is not None else None  # RFC 9068 §2.2
        issued_to = named if isinstance(named, str) else None
        response.headers.update(await oidc.cors.actual(origin, issued_to, USERINFO))
    return response


async def _userinfo(
    oidc: Provider, request: Req, scheme: str, token: str | None, live: LiveToken | None
) -> Response[dict[str, Any]]:
    if not token:
        # RFC 6750 §3.1: no authentication at all, so no error code, only the challenges.
        return Response({}, status_code=401, headers=_NO_CREDENTIALS, media_type="application/json")
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
async def userinfo_get(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    return await _answer(oidc, request, *_presented(request))


@post("/oidc/userinfo", operation_id="OidcUserinfoPost", tags=["oidc"], status_code=200)
async def userinfo_post(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    scheme, token = _presented(request)
    if token is None and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = await request.form()
        value = form.get("access_token")
        token = str(value) if value else None
    return await _answer(oidc, request, scheme, token)


@route(
    "/oidc/userinfo",
    http_method=[HttpMethod.OPTIONS],
    operation_id="OidcUserinfoPreflight",
    include_in_schema=False,
)
async def userinfo_options(request: Req, oidc: NamedDependency[Provider]) -> Response[None]:
    """The CORS preflight (``cors.py``)."""
    headers = await oidc.cors.preflight(request.headers.get("origin"), USERINFO)
    return Response(None, status_code=204, headers=headers, media_type=MediaType.TEXT)
