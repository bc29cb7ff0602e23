"""The authorization endpoint (OpenID Connect Core §3.1.2, RFC 6749 §4.1, RFC 9207, RFC 9126).

``GET|POST /oidc/authorize`` validates the request (``request.py``), then either answers the client
at once (a code, or an error such as ``login_required`` for ``prompt=none``) or parks the request as
an *interaction* bound to this browser and sends the person to the login / step-up / consent pages
(``interaction.py``), which come back to :func:`advance` until a code is issued. Every answer to the
client carries ``iss``; redirects are 303 (RFC 9700 §4.12).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from identity.oidc.errors import ErrorPage, OAuthError
from identity.oidc.grants import AuthContext
from identity.oidc.jose import TokenInvalid, verify_own
from identity.oidc.pages import page, render, text
from identity.oidc.provider import BROWSER_COOKIE, Provider
from identity.oidc.request import PAR_PREFIX, AuthRequest, RedirectError, parse_authorization, single_params
from identity.oidc.settings import ALGORITHMS
from identity.oidc.sso import SsoSession

__all__ = ["Interaction", "advance", "authorize_get", "authorize_post", "error_page", "redirect_error"]

Req = Request[Any, Any, Any]
Step = Literal["login", "step_up", "consent", "issue"]


class Interaction(msgspec.Struct, kw_only=True):
    iid: str
    browser: str
    request: AuthRequest
    login_sid: uuid.UUID | None = None  # the SSO session a login in this interaction opened
    consented: bool = False
    code_sent_to: str | None = None


_ia_dec = msgspec.json.Decoder(Interaction)
_enc = msgspec.json.Encoder()


def redirect(location: str, headers: dict[str, str] | None = None) -> Response[None]:
    return Response(
        None, status_code=303, headers={"Location": location, "Cache-Control": "no-store", **(headers or {})}
    )


def _to_client(redirect_uri: str, values: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in values.items() if v is not None})
    return redirect_uri + ("&" if "?" in redirect_uri else "?") + query


def redirect_error(provider: Provider, exc: RedirectError) -> Response[None]:
    return redirect(
        _to_client(exc.redirect_uri, {**exc.error.body(), "state": exc.state, "iss": provider.issuer})
    )


def error_page(locale: str, exc: ErrorPage) -> Response[str]:
    body = render(
        "message", message=exc.description, detail=render("message", message=f"({exc.error})", detail="")
    )
    return page(locale, text(locale, "error_title"), body, status=exc.status)


async def save_interaction(provider: Provider, ia: Interaction) -> None:
    await provider.redis.set(f"oidc:ia:{ia.iid}", _enc.encode(ia), ex=provider.settings.interaction_ttl)


async def load_interaction(provider: Provider, iid: str) -> Interaction | None:
    raw = await provider.redis.get(f"oidc:ia:{iid[:64]}")
    return None if raw is None else _ia_dec.decode(raw)


async def _hint_subject(provider: Provider, hint: str, client_id: str) -> str | None:
    # OIDC Core §3.1.2.1: id_token_hint is an ID token; ours carry typ JWT (an access token has
    # at+jwt, RFC 9068 §2.1, a logout token logout+jwt), so only an ID token is taken as a hint.
    try:
        claims = await verify_own(
            provider.keys,
            hint,
            algorithms=list(ALGORITHMS),
            typ="jwt",
            issuer=provider.issuer,
            audience=client_id,
            verify_exp=False,
        )
    except TokenInvalid:
        return None
    return str(claims.get("sub"))


async def _account_level(provider: Provider, account_id: uuid.UUID) -> int:
    level = await provider.core.pool.fetchval("SELECT level FROM identity.accounts WHERE id = $1", account_id)
    return int(level or 1)


async def decide(
    provider: Provider, request: AuthRequest, session: SsoSession | None, ia: Interaction | None
) -> Step:
    """The next step of the request. ``prompt=login`` or an expired ``max_age`` asks for a new
    authentication (the login page). ``prompt=select_account`` (OpenID Connect Core §3.1.2.1) shows
    the login page too: a browser holds one signed-in account here, so choosing an account is
    signing in with it, and nothing ends unless another account signs in (``interaction.py``)."""
    client = await provider.clients.get(request.client_id)
    if client is None:
        raise ErrorPage("invalid_client", "The application is no longer registered.")

    def fail(error: str, description: str) -> RedirectError:
        return RedirectError(request, request.redirect_uri, request.state, OAuthError(error, description))

    fresh = session is not None and ia is not None and ia.login_sid == session.sid
    need_login = session is None
    if session is not None and not fresh:
        if "login" in request.prompt or "select_account" in request.prompt:
            need_login = True
        if request.max_age is not None and time.time() - session.auth_time > request.max_age:
            need_login = True
    if session is not None and request.id_token_hint:
        hinted = await _hint_subject(provider, request.id_token_hint, client.client_id)
        if hinted is None:
            raise fail("invalid_request", "id_token_hint is not an ID token this provider issued to you")
        if hinted != provider.tokens.subject(client, session.account_id):
            if "none" in request.prompt:
                raise fail("login_required", "the signed-in person is not the one hinted")
            need_login = True
    if need_login:
        if "none" in request.prompt:
            raise fail("login_required", "no sign-in, or a new one is required")
        return "login"
    assert session is not None
    if session.loa < request.min_loa:
        level = await _account_level(provider, session.account_id)
        if level >= request.min_loa and request.min_loa == 3:
            if "none" in request.prompt:
                raise fail("interaction_required", "a second factor is required")
            return "step_up"
        if request.acr_essential:
            raise fail("unmet_authentication_requirements", f"the account cannot reach loa{request.min_loa}")
    if not client.first_party:
        asked = "consent" in request.prompt and not (ia is not None and ia.consented)
        if asked or not await provider.consents.covers(session.account_id, client.client_id, request.scope):
            if "none" in request.prompt:
                raise fail("consent_required", "the person has not consented to these scopes")
            return "consent"
    return "issue"


async def issue_code(provider: Provider, request: AuthRequest, session: SsoSession) -> Response[None]:
    """Complete the request: consume the pushed request (once), record the grant, send the code.
    The grant ends with ``session`` unless ``offline_access`` was granted (``GrantStore.lifetime``)."""
    if request.par_key is not None and not await provider.redis.delete(request.par_key):
        raise RedirectError(
            request,
            request.redirect_uri,
            request.state,
            OAuthError("invalid_request", "request_uri was already used or has expired"),
        )
    ctx = AuthContext(
        client_id=request.client_id,
        scope=request.scope,
        account_id=session.account_id,
        sid=session.sid,
        acr=f"loa{session.loa}",
        amr=session.amr,
        auth_time=session.auth_time,
        claims=request.userinfo_claims,
        jkt=request.dpop_jkt,
    )
    _, code = await provider.grants.start(
        ctx,
        redirect_uri=request.redirect_uri,
        code_challenge=request.code_challenge,
        nonce=request.nonce,
        sso_clients=(provider.sso.clients_key(session.sid), provider.sso.ttl),
        session_expires=session.expires_at,
    )
    return redirect(
        _to_client(request.redirect_uri, {"code": code, "state": request.state, "iss": provider.issuer})
    )


async def advance(
    provider: Provider, connection: Req, request: AuthRequest, ia: Interaction | None
) -> Response[Any]:
    """Take the request as far as it goes now; park it as an interaction if the person must act."""
    session = await provider.current_session(connection)
    try:
        step = await decide(provider, request, session, ia)
        if step == "issue":
            assert session is not None
            if ia is not None and not await provider.redis.delete(f"oidc:ia:{ia.iid}"):
                raise ErrorPage("invalid_request", "This sign-in was already completed.")
            return await issue_code(provider, request, session)
    except RedirectError as exc:
        if ia is not None:
            await provider.redis.delete(f"oidc:ia:{ia.iid}")
        return redirect_error(provider, exc)
    headers: dict[str, str] = {}
    if ia is None:
        browser = connection.cookies.get(BROWSER_COOKIE) or ""
        if len(browser) != 32:
            browser = secrets.token_urlsafe(24)
            headers["Set-Cookie"] = provider.cookie_header(BROWSER_COOKIE, browser, 86400 * 365)
        ia = Interaction(iid=secrets.token_urlsafe(24), browser=browser, request=request)
        await save_interaction(provider, ia)
    return redirect(f"/oidc/interaction/{ia.iid}", headers)


async def _pushed(provider: Provider, params: dict[str, str]) -> tuple[Any, str, dict[str, str]]:
    """The client, the Redis key and the parameters of a pushed request named by ``request_uri``."""
    client_id = params.get("client_id", "")
    client = await provider.clients.get(client_id) if client_id else None
    if client is None:
        raise ErrorPage("invalid_client", "The application is not registered (unknown client_id).")
    request_uri = params["request_uri"]
    if not request_uri.startswith(PAR_PREFIX):
        raise ErrorPage(
            "invalid_request_uri", "Only pushed authorization requests are accepted as request_uri."
        )
    reference = request_uri[len(PAR_PREFIX) :]
    pushed = await provider.pushed.open(client.client_id, reference)
    if pushed is None:
        raise ErrorPage(
            "invalid_request_uri", "The pushed request has expired, was used, or is another client's."
        )
    return client, provider.pushed.key(client.client_id, reference), pushed


def _params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    try:
        return single_params(pairs)
    except OAuthError as exc:
        raise ErrorPage(exc.error, exc.description) from None


async def _authorize(provider: Provider, connection: Req, pairs: list[tuple[str, str]]) -> Response[Any]:
    locale = "zh-CN"
    try:
        params = _params(pairs)
        client, par_key = None, None
        if "request_uri" in params:
            client, par_key, params = await _pushed(provider, params)
        client, request = await parse_authorization(params, provider.clients, client=client, par_key=par_key)
        locale = request.ui_locale
    except ErrorPage as exc:
        return error_page(locale, exc)
    except RedirectError as exc:
        return redirect_error(provider, exc)
    return await advance(provider, connection, request, None)


@get("/oidc/authorize", operation_id="OidcAuthorize", tags=["oidc"], include_in_schema=True)
async def authorize_get(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    """The authorization endpoint (code flow with PKCE S256)."""
    return await _authorize(oidc, request, list(request.query_params.multi_items()))


@post("/oidc/authorize", operation_id="OidcAuthorizePost", tags=["oidc"], status_code=303)
async def authorize_post(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    """The authorization endpoint, form-encoded (OpenID Connect Core §3.1.2.1)."""
    form = await request.form()
    return await _authorize(oidc, request, [(k, str(v)) for k, v in form.multi_items()])
