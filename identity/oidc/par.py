"""Pushed authorization requests (RFC 9126).

Only authenticated (confidential) clients push. The request is validated exactly as at the
authorization endpoint, but every error is RFC 6749 JSON. It must be used within ``par_ttl``
seconds (≤ 60 by default); its first use gives it the interaction's lifetime, so a slow login
still completes (``pushed.py``). The key includes the client id, so a ``request_uri`` only works
for the client that pushed it; it can be opened again until the authorization completes, and
then never (the completion deletes it, once).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from identity.oidc.errors import ErrorPage, OAuthError
from identity.oidc.provider import Provider
from identity.oidc.request import PAR_PREFIX, RedirectError, parse_authorization
from identity.oidc.token import parse_form, proof_key

__all__ = ["pushed_authorization_request"]

Req = Request[Any, Any, Any]
_AUTH_FIELDS = {"client_secret", "client_assertion", "client_assertion_type"}


@post("/oidc/par", operation_id="OidcPushedAuthorizationRequest", tags=["oidc"], status_code=201)
async def pushed_authorization_request(
    request: Req, oidc: NamedDependency[Provider]
) -> Response[dict[str, Any]]:
    form = await parse_form(request)
    peer = request.client.host if request.client is not None else ""
    client = await oidc.client_auth.authenticate(request.headers, form, peer)
    if client.auth_method == "none":
        raise OAuthError("invalid_client", "only authenticated clients may push authorization requests", 401)
    if "request_uri" in form:
        raise OAuthError("invalid_request", "request_uri is not allowed in a pushed request")
    params = {k: v for k, v in form.items() if k not in _AUTH_FIELDS}
    params["client_id"] = client.client_id
    # RFC 9449 §10.1: a proof at PAR binds the code to its key, like dpop_jkt; both must agree.
    jkt = await proof_key(oidc, request.headers.getall("dpop", []), "par", required=False)
    if jkt is not None and params.setdefault("dpop_jkt", jkt) != jkt:
        raise OAuthError("invalid_dpop_proof", "dpop_jkt differs from the DPoP proof's key")
    try:
        await parse_authorization(params, oidc.clients, pushed=True, client=client)
    except ErrorPage as exc:
        raise OAuthError("invalid_request", exc.description) from None
    except RedirectError as exc:
        raise exc.error from None
    reference = await oidc.pushed.push(client.client_id, params)
    return Response(
        {"request_uri": PAR_PREFIX + reference, "expires_in": oidc.settings.par_ttl},
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )
