"""Validating an authorization request (the authorization endpoint and PAR share it).

Order matters (RFC 6749 §4.1.2.1): until the client and the exact redirect URI are known, every
error is an :class:`ErrorPage` and nothing redirects; after that, errors go back to the client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec

from identity.oidc.claims import CLAIMS_SUPPORTED
from identity.oidc.clients import Client, ClientStore
from identity.oidc.errors import ErrorPage, OAuthError
from identity.oidc.grants import ClaimRequests
from identity.oidc.pages import pick_locale

__all__ = ["PAR_PREFIX", "AuthRequest", "RedirectError", "parse_authorization", "single_params"]

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"
_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43}$")
_PROMPTS = {"none", "login", "consent", "select_account"}
# RFC 8252 §7.3: a loopback IP literal, with or without a port (``localhost`` is not one, §8.3).
_LOOPBACK = re.compile(r"^(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?$")
_CLAIM_MEMBERS = ("essential", "value", "values")
_CLAIMS_MAX = 4096  # characters of the claims parameter (each supported claim, essential, in both: 1.4 kB)


class AuthRequest(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    min_loa: int = 1
    acr_essential: bool = False
    login_hint: str | None = None
    ui_locale: str = "zh-CN"
    id_token_hint: str | None = None
    userinfo_claims: ClaimRequests | None = None
    id_token_claims: ClaimRequests | None = None
    par_key: str | None = None
    dpop_jkt: str | None = None  # RFC 9449 §10: the code is bound to this key thumbprint


class RedirectError(Exception):
    """An OAuth error to send back to the client's (validated) redirect URI."""

    def __init__(
        self, request: AuthRequest | None, redirect_uri: str, state: str | None, error: OAuthError
    ) -> None:
        super().__init__(error.description)
        self.request = request
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error


def single_params(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict; a repeated parameter is an error (RFC 6749 §3.1)."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise OAuthError("invalid_request", f"the parameter {key} is repeated")
        out[key] = value
    return out


def _loa(value: str) -> int | None:
    return int(value[3]) if len(value) == 4 and value.startswith("loa") and value[3] in "123" else None


def _claim_request(name: str, asked: object) -> bool:
    """One claim of the claims parameter is null or an object whose ``essential`` is a boolean
    and ``values`` an array; for ``acr``, ``value`` is a string and ``values`` strings."""
    if asked is None:
        return True
    if not isinstance(asked, dict) or not isinstance(asked.get("essential", False), bool):
        return False
    values = asked.get("values", [])
    if not isinstance(values, list):
        return False
    return name != "acr" or (
        isinstance(asked.get("value", ""), str) and all(isinstance(v, str) for v in values)
    )


def _claim_requests(member: object) -> ClaimRequests | None:
    """One member (``userinfo`` or ``id_token``) of the claims parameter: an object mapping claim
    names to claim requests (``_claim_request``); ValueError for anything else. Claims this
    provider does not know are dropped (Core §5.5: ignored), and so are unknown members of a
    claim's object; what remains is kept with the grant."""
    if member is None:
        return None
    if not isinstance(member, dict) or not all(_claim_request(n, a) for n, a in member.items()):
        raise ValueError("malformed claims member")
    kept: ClaimRequests = {
        name: None if asked is None else {k: asked[k] for k in _CLAIM_MEMBERS if k in asked}
        for name, asked in member.items()
        if name in CLAIMS_SUPPORTED
    }
    return kept or None


def _claims_parameter(raw: str) -> tuple[ClaimRequests | None, ClaimRequests | None]:
    """The claims parameter (OpenID Connect Core §5.5): (userinfo, id_token). ValueError if it is
    not a JSON object of that shape."""
    if len(raw) > _CLAIMS_MAX:
        raise ValueError("too long")
    try:
        claims = json.loads(raw)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if isinstance(claims, dict):
        return _claim_requests(claims.get("userinfo")), _claim_requests(claims.get("id_token"))
    raise ValueError("not a JSON object")


def _without_loopback_port(uri: str) -> tuple[str, ...] | None:
    """The parts of an ``http`` loopback IP redirect URI but its port; None for any other URI."""
    parts = urlsplit(uri)
    found = _LOOPBACK.match(parts.netloc)
    if parts.scheme != "http" or found is None or int(found.group(2) or 0) > 65535:
        return None
    return (parts.scheme, found.group(1), parts.path, parts.query, parts.fragment)


def redirect_registered(client: Client, redirect_uri: str) -> bool:
    """Exact string match with a registered redirect URI (RFC 9700 §4.1.3), except that for a
    native (public) client's loopback IP redirect URI (``http://127.0.0.1`` or ``http://[::1]``)
    any port is accepted and everything else is compared exactly (RFC 8252 §7.3); ``localhost``
    and every other URI stay exact (RFC 8252 §8.3)."""
    if redirect_uri in client.redirect_uris:
        return True
    if client.client_type != "public":
        return False
    presented = _without_loopback_port(redirect_uri)
    return presented is not None and any(
        _without_loopback_port(registered) == presented for registered in client.redirect_uris
    )


async def parse_authorization(
    params: dict[str, str],
    clients: ClientStore,
    *,
    pushed: bool = False,
    client: Client | None = None,
    par_key: str | None = None,
) -> tuple[Client, AuthRequest]:
    if client is None:
        client_id = params.get("client_id", "")
        client = await clients.get(client_id) if client_id else None
        if client is None:
            raise ErrorPage("invalid_client", "The application is not registered (unknown client_id).")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri or not redirect_registered(client, redirect_uri):
        # Exact match (but a native client's loopback port); nothing goes to an address we cannot vouch for.
        raise ErrorPage("invalid_request", "The redirect address is not registered for this application.")
    state = params.get("state")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(None, redirect_uri, state, OAuthError(error, description))

    if "authorization_code" not in client.grant_types:
        raise fail("unauthorized_client", "this client may not use the authorization code flow")
    if "request" in params:
        raise fail("request_not_supported", "request objects are not supported; use PAR")
    if "request_uri" in params:
        raise fail("invalid_request", "request_uri is not allowed here")
    if client.require_par and not pushed and par_key is None:
        raise fail("invalid_request", "this client must push its authorization requests (PAR)")
    response_type = params.get("response_type")
    if not response_type:
        raise fail("invalid_request", "response_type is required")
    if response_type != "code":
        raise fail("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise fail("invalid_request", "only response_mode=query is supported")
    scope = tuple(dict.fromkeys(params.get("scope", "").split()))
    if not scope:
        raise fail("invalid_scope", "scope is required")
    if not set(scope) <= set(client.scopes):
        raise fail("invalid_scope", "a requested scope is not allowed for this client")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise fail("invalid_request", "PKCE is required: send code_challenge with method S256")
    if method != "S256":
        raise fail("invalid_request", "code_challenge_method must be S256 (plain is refused)")
    if not _CHALLENGE.match(challenge):
        raise fail("invalid_request", "code_challenge must be 43 base64url characters")
    prompt = tuple(params.get("prompt", "").split())
    if not set(prompt) <= _PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise fail("invalid_request", "prompt must be none alone, or any of login, consent, select_account")
    max_age = None
    if "max_age" in params:
        try:
            max_age = int(params["max_age"])
        except ValueError:
            raise fail("invalid_request", "max_age must be a whole number of seconds") from None
        if max_age < 0:
            raise fail("invalid_request", "max_age must not be negative")
    levels = [n for n in (_loa(v) for v in params.get("acr_values", "").split()) if n is not None]
    min_loa = min(levels) if levels else 1
    userinfo_claims = id_token_claims = None
    acr_essential = False
    if "claims" in params:
        try:
            userinfo_claims, id_token_claims = _claims_parameter(params["claims"])
        except ValueError:
            raise fail(
                "invalid_request",
                "claims is malformed (OpenID Connect Core 5.5: userinfo and id_token objects, each "
                "claim null or an object; essential a boolean, values an array, acr values strings)",
            ) from None
        acr = (id_token_claims or {}).get("acr")
        if acr is not None:
            values = acr.get("values") or ([acr["value"]] if "value" in acr else [])
            essential_levels = [n for n in (_loa(v) for v in values) if n is not None]
            if essential_levels:
                min_loa = max(min_loa, min(essential_levels))
            acr_essential = bool(acr.get("essential"))
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not _CHALLENGE.match(dpop_jkt):
        raise fail("invalid_request", "dpop_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)")
    for name, limit in (("state", 2048), ("nonce", 512), ("login_hint", 64), ("id_token_hint", 8192)):
        if len(params.get(name, "")) > limit:
            raise fail("invalid_request", f"{name} is too long")
    request = AuthRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        code_challenge=challenge,
        state=state,
        nonce=params.get("nonce"),
        prompt=prompt,
        max_age=max_age,
        min_loa=min_loa,
        acr_essential=acr_essential,
        login_hint=params.get("login_hint"),
        ui_locale=pick_locale(params.get("ui_locales")),
        id_token_hint=params.get("id_token_hint"),
        userinfo_claims=userinfo_claims,
        id_token_claims=id_token_claims,
        par_key=par_key,
        dpop_jkt=dpop_jkt,
    )
    return client, request
