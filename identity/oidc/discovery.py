"""Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS.

Public documents any page may read (``cors.py``): ``Access-Control-Allow-Origin: *``, no credentials.
"""

from __future__ import annotations

from typing import Any

from litestar import HttpMethod, MediaType, Response, get, route
from litestar.di import NamedDependency

from identity.oidc.claims import CLAIMS_SUPPORTED
from identity.oidc.client_auth import ASSERTION_ALGS
from identity.oidc.clients import GRANT_TYPES, SCOPES
from identity.oidc.cors import PUBLIC, PUBLIC_PREFLIGHT
from identity.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from identity.oidc.pages import LOCALES
from identity.oidc.provider import Provider
from identity.oidc.settings import ALGORITHMS

__all__ = ["jwks", "metadata", "oauth_metadata", "openid_configuration", "public_preflight"]

_PUBLIC = {"Cache-Control": "public, max-age=300", **PUBLIC}
_DISCOVERY = "/.well-known/openid-configuration"
_OAUTH_METADATA = "/.well-known/oauth-authorization-server"
_JWKS = "/oidc/jwks"
_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def metadata(oidc: Provider) -> dict[str, Any]:
    return {
        "issuer": oidc.issuer,
        "authorization_endpoint": oidc.url("authorize"),
        "token_endpoint": oidc.url("token"),
        "userinfo_endpoint": oidc.url("userinfo"),
        "jwks_uri": oidc.url("jwks"),
        "end_session_endpoint": oidc.url("logout"),
        "introspection_endpoint": oidc.url("introspect"),
        "revocation_endpoint": oidc.url("revoke"),
        "pushed_authorization_request_endpoint": oidc.url("par"),
        "require_pushed_authorization_requests": False,
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "userinfo_signing_alg_values_supported": [],
        "token_endpoint_auth_methods_supported": _AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": _AUTH_METHODS[:3],
        "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "acr_values_supported": ["loa1", "loa2", "loa3"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": list(LOCALES),
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }


@get(_DISCOVERY, operation_id="OidcDiscovery", tags=["oidc"])
async def openid_configuration(oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    return Response(metadata(oidc), headers=_PUBLIC)


@get(_OAUTH_METADATA, operation_id="OAuthMetadata", tags=["oidc"])
async def oauth_metadata(oidc: NamedDependency[Provider]) -> Response[dict[str, Any]]:
    return Response(metadata(oidc), headers=_PUBLIC)


@get(_JWKS, operation_id="OidcJwks", tags=["oidc"])
async def jwks(oidc: NamedDependency[Provider]) -> Response[bytes]:
    return Response(await oidc.keys.jwks(), media_type="application/jwk-set+json", headers=_PUBLIC)


@route(
    [_DISCOVERY, _OAUTH_METADATA, _JWKS],
    http_method=[HttpMethod.OPTIONS],
    operation_id="OidcPublicPreflight",
    include_in_schema=False,
)
async def public_preflight() -> Response[None]:
    """A CORS preflight for a public document; a plain GET needs none, one with a non-safelisted
    header does (Fetch standard, "CORS-preflight request")."""
    return Response(
        None,
        status_code=204,
        headers={"Allow": "GET, OPTIONS", **PUBLIC_PREFLIGHT},
        media_type=MediaType.TEXT,
    )
