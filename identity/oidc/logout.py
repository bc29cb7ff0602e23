"""Logout: RP-initiated (OpenID Connect RP-Initiated Logout 1.0) and back-channel notifications
(OpenID Connect Back-Channel Logout 1.0) to every client that received tokens in the session.

Forced-logout protection (ASVS 10.6): with a valid ``id_token_hint`` for the current session the
session ends at once; otherwise the person confirms on a page (POST with a CSRF token). A
``post_logout_redirect_uri`` must be registered for the client named by the hint or by
``client_id`` — otherwise an error page, never a redirect; a modified hint is refused the same way.
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.di import NamedDependency

from identity.oidc.authorize import redirect
from identity.oidc.errors import ErrorPage
from identity.oidc.jose import TokenInvalid, verify_own
from identity.oidc.pages import Fragment, page, pick_locale, render, text
from identity.oidc.provider import Provider
from identity.oidc.request import single_params
from identity.oidc.settings import ALGORITHMS
from identity.oidc.sso import COOKIE, SsoSession

__all__ = ["logout_get", "logout_post", "notify_backchannel"]

log = logging.getLogger("citizen.identity.oidc")
Req = Request[Any, Any, Any]


async def notify_backchannel(oidc: Provider, session: SsoSession, client_ids: list[str]) -> int:
    """POST a logout token to each client's back-channel URI (bounded in time); returns deliveries."""

    async def deliver(client_id: str) -> bool:
        client = await oidc.clients.get(client_id)
        if client is None or not client.backchannel_logout_uri:
            return False
        token = await oidc.tokens.logout_token(client, account_id=session.account_id, sid=session.sid)
        try:
            response = await oidc.http.post(
                client.backchannel_logout_uri,
                data={"logout_token": token},
                timeout=oidc.settings.backchannel_timeout,
            )
        except Exception as exc:
            log.warning("back-channel logout to %s failed: %s", client_id, type(exc).__name__, exc_info=exc)
            return False
        if response.status_code >= 400:
            log.warning(
                "back-channel logout refused", extra={"client_id": client_id, "status": response.status_code}
            )
        return response.status_code < 400

    results = await asyncio.gather(*(deliver(c) for c in client_ids))
    return sum(results)


def _bye(locale: str) -> Response[str]:
    return page(
        locale, text(locale, "logout_title"), render("message", message=text(locale, "logged_out"), detail="")
    )


async def _logout(oidc: Provider, request: Req, params: dict[str, str], confirmed: bool) -> Response[Any]:
    locale = pick_locale(params.get("ui_locales"), request.headers.get("accept-language"))
    hint = params.get("id_token_hint")
    claims: dict[str, Any] | None = None
    if hint:
        # RP-Initiated Logout 1.0 §2: the hint is an ID token (typ JWT here); an access token
        # (at+jwt, RFC 9068 §2.1) or a logout token (logout+jwt) is not one.
        try:
            claims = await verify_own(
                oidc.keys, hint, algorithms=list(ALGORITHMS), typ="jwt", issuer=oidc.issuer, verify_exp=False
            )
        except TokenInvalid:
            raise ErrorPage(
                "invalid_request", "The id_token_hint is not an ID token of this provider."
            ) from None
    client_id = params.get("client_id")
    if claims is not None:
        audience = claims.get("aud")
        hinted = audience if isinstance(audience, str) else (audience or [None])[0]
        if client_id is not None and client_id != hinted:
            raise ErrorPage("invalid_request", "client_id does not match the id_token_hint.")
        client_id = hinted
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        client = await oidc.clients.get(client_id) if client_id else None
        if client is None or target not in client.post_logout_redirect_uris:
            raise ErrorPage("invalid_request", "The address to return to after logout is not registered.")
    session = await oidc.current_session(request)
    if session is not None:
        matches = claims is not None and claims.get("sid") == str(session.sid)
        if not matches and not confirmed:
            # The confirmation carries what the checks above need again: the client named by the
            # hint too (a valid hint for another session, e.g. an older sign-in), else the
            # post_logout_redirect_uri would be unregistered for "no client" and the logout fail.
            carried = {**params, "client_id": client_id} if client_id else params
            hidden = "".join(
                f'<input type="hidden" name="{k}" value="{html.escape(carried[k], quote=True)}">'
                for k in ("post_logout_redirect_uri", "state", "client_id", "ui_locales")
                if k in carried
            )
            body = render(
                "logout",
                question=text(locale, "logout_question"),
                action="/oidc/logout",
                csrf=oidc.csrf("logout", str(session.sid)),
                hidden=Fragment(hidden),
                yes=text(locale, "logout_yes"),
            )
            return page(locale, text(locale, "logout_title"), body)
        if not matches and not oidc.csrf_ok("logout", str(session.sid), params.get("csrf")):
            raise ErrorPage("invalid_request", "The logout form has expired (CSRF check failed).", 403)
        await oidc.end_session(session.sid, "logout", session.account_id)
    clear = {"Set-Cookie": oidc.cookie_header(COOKIE, "", 0)}
    if target is not None:
        query = urlencode({"state": params["state"]}) if "state" in params else ""
        return redirect(target + (("&" if "?" in target else "?") + query if query else ""), clear)
    response = _bye(locale)
    response.headers.update(clear)
    return response


def _error(exc: ErrorPage) -> Response[str]:
    return page(
        "zh-CN",
        text("zh-CN", "error_title"),
        render("message", message=exc.description, detail=""),
        status=exc.status,
    )


@get("/oidc/logout", operation_id="OidcLogout", tags=["oidc"])
async def logout_get(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    try:
        return await _logout(oidc, request, single_params(list(request.query_params.multi_items())), False)
    except ErrorPage as exc:
        return _error(exc)
    except Exception as exc:
        from identity.oidc.errors import OAuthError

        if isinstance(exc, OAuthError):
            return _error(ErrorPage(exc.error, exc.description))
        raise


@post("/oidc/logout", operation_id="OidcLogoutPost", tags=["oidc"], status_code=200)
async def logout_post(request: Req, oidc: NamedDependency[Provider]) -> Response[Any]:
    form = await request.form()
    try:
        params = single_params([(k, str(v)) for k, v in form.multi_items()])
        return await _logout(oidc, request, params, params.get("confirm") == "yes")
    except ErrorPage as exc:
        return _error(exc)
