"""The citizen's card page under ``/web/``: sign-in through the OpenID provider, the card and its
live ride QR code, the e-purse and its top-ups, card actions, the home tiles, acting for an
organisation. Every datum comes from the API, called with the person's access token."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from backend.web.oidc import pkce_pair
from backend.web.pages import Page, WebRuntime, local_path
from backend.web.sessions import WEB_COOKIE, PendingLogin, session_hash
from backend.web.upstream import ApiError

__all__ = ["citizen_router"]

Req = Request[Any, Any, Any]
AREA = "/web/"
CHANNELS = ("unionpay", "alipay", "wechatpay")
CARD_ACTIONS = {"freeze": "freeze", "unfreeze": "unfreeze", "report_loss": "loss"}
_AMOUNT = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class SignInRequired(Exception):
    """The session has no usable tokens: sign in again, then come back to ``return_to``."""

    def __init__(self, return_to: str = AREA) -> None:
        self.return_to = return_to
        super().__init__(return_to)


async def _page(web: WebRuntime, request: Req) -> Page:
    return await Page.open(web, request, WEB_COOKIE, AREA)


def _here(request: Req) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def _token(page: Page, *, force_refresh: bool = False) -> str:
    s = page.session
    if s.kind != "citizen" or not s.access_token:
        raise SignInRequired
    if force_refresh or s.expires_at - 30 < time.time():
        tokens = await page.web.rp.refresh(s.refresh_token) if s.refresh_token else None
        if tokens is None:
            page.sign_out()
            raise SignInRequired
        s.access_token = tokens.access_token
        s.refresh_token = tokens.refresh_token or s.refresh_token
        s.expires_at = tokens.expires_at
        s.org_token, s.org_expires_at = None, 0.0  # exchanged again from the new token when needed
        page.changed()
    assert s.access_token is not None
    return s.access_token


async def _call(page: Page, method: str, path: str, **kwargs: Any) -> Any:
    """The API with the person's token; one refresh on a 401, then sign in again."""
    try:
        return await page.web.api.call(method, path, token=await _token(page), **kwargs)
    except ApiError as exc:
        if not exc.unauthenticated:
            raise
    return await page.web.api.call(method, path, token=await _token(page, force_refresh=True), **kwargs)


async def _org_token(page: Page) -> str | None:
    s = page.session
    if not s.org_id:
        return None
    if s.org_token is None or s.org_expires_at - 30 < time.time():
        tokens = await page.web.rp.act_for(await _token(page), s.org_id)
        s.org_token, s.org_expires_at = tokens.access_token, tokens.expires_at
        page.changed()
    return s.org_token


def _end_org_context(page: Page) -> None:
    s = page.session
    s.flash = page.t("org_context_ended", name=s.org_name or "")
    s.org_id = s.org_name = s.org_token = None
    s.org_expires_at = 0.0
    page.changed()


async def _as_acting(page: Page, method: str, path: str) -> Any:
    """The API as the person acts now: with the organisation's token when acting for one. That
    token is revoked when the person's roles there change (even a role added): on a 401 it is
    exchanged once more, and an exchange refused (no role any more) ends the acting context."""
    if page.session.org_id is None:
        return await _call(page, method, path)
    token = await _org_token(page)
    assert token is not None
    try:
        return await page.web.api.call(method, path, token=token)
    except ApiError as exc:
        if not exc.unauthenticated:
            raise
    page.session.org_token = None
    try:
        token = await _org_token(page)
    except ApiError as exc:
        if exc.status != 400:  # invalid_target: the person holds no role there now
            raise
        _end_org_context(page)
        return await _call(page, method, path)
    assert token is not None
    return await page.web.api.call(method, path, token=token)


def _login_redirect(return_to: str) -> str:
    return "/web/login?" + urlencode({"return_to": return_to})


# -- sign-in -------------------------------------------------------------------------------------


@get("/login", operation_id="WebCitizenLogin", include_in_schema=False)
async def login(
    request: Req, web: NamedDependency[WebRuntime], return_to: FromQuery[str | None] = None
) -> Response[Any]:
    """Start the authorization code flow (PKCE S256); the provider's login page follows."""
    page = await _page(web, request)
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    pending = PendingLogin(
        session=session_hash(page.session),
        verifier=verifier,
        nonce=nonce,
        return_to=local_path(return_to, AREA),
    )
    await web.sessions.start_login(page.session, pending, state)
    try:
        url = await web.rp.authorization_url(state=state, nonce=nonce, challenge=challenge, lang=page.lang)
    except ApiError as exc:
        return await page.render("message.html", status=exc.status, message=page.t("err_generic", detail=exc))
    return await page.redirect(url)


@get("/callback", operation_id="WebCitizenCallback", include_in_schema=False)
async def callback(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    """The provider's answer (``state`` is a reserved name for Litestar's parameters: read by hand)."""
    query = request.query_params
    code, state = query.get("code"), query.get("state")
    error, error_description = query.get("error"), query.get("error_description")
    page = await _page(web, request)
    pending = await web.sessions.finish_login(page.session, state or "")
    if pending is None:
        return await page.render(
            "message.html", status=400, message=page.t("login_failed", detail="state"), retry=True
        )
    if error or not code:
        detail = error_description or error or "no code"
        return await page.render(
            "message.html", status=400, message=page.t("login_failed", detail=detail), retry=True
        )
    try:
        tokens = await web.rp.redeem(code, pending.verifier)
        claims = await web.rp.verify_id_token(tokens.id_token or "", pending.nonce)
        info = await web.rp.userinfo(tokens.access_token)
    except ApiError as exc:
        return await page.render(
            "message.html", status=400, message=page.t("login_failed", detail=exc), retry=True
        )
    page.sign_out()  # a new session id and CSRF token, nothing left of an earlier sign-in
    s = page.session
    s.kind = "citizen"
    s.access_token, s.refresh_token, s.id_token = tokens.access_token, tokens.refresh_token, tokens.id_token
    s.expires_at = tokens.expires_at
    s.name = str(info.get("name") or claims.get("name") or info.get("phone_number") or claims["sub"])
    return await page.redirect(pending.return_to)


@post("/logout", operation_id="WebCitizenLogout", include_in_schema=False, status_code=303)
async def logout(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    form = await page.form()
    if not page.csrf_ok(form):
        return await page.redirect(AREA)
    id_token, refresh = page.session.id_token, page.session.refresh_token
    if refresh:
        await web.rp.revoke(refresh)
    page.sign_out()
    return await page.redirect(await web.rp.logout_url(id_token))


# -- the card page --------------------------------------------------------------------------------


async def _optional(page: Page, method: str, path: str, **kwargs: Any) -> tuple[Any, ApiError | None]:
    try:
        return await _call(page, method, path, **kwargs), None
    except ApiError as exc:
        return None, exc


async def _card_page(
    page: Page,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response[Any]:
    s = page.session
    card, card_error = await _optional(page, "GET", "/api/v1/cards/me")
    topups, _ = await _optional(page, "GET", "/api/v1/payments/topups")
    organisations, organisations_error = await _optional(page, "GET", "/api/v1/identity/organisations")
    active = [m for m in organisations or [] if m.get("status") == "active"]  # invitations give no role
    if (
        s.org_id
        and organisations_error is None
        and not any(str(m.get("organisation_id")) == s.org_id for m in active)
    ):
        # Suspended, removed, expired or the organisation gone: identity already revoked the
        # organisation's token; the page stops saying "acting for" and says why.
        _end_org_context(page)
    try:
        home: Any = await _as_acting(page, "GET", "/api/v1/home")
    except ApiError:
        home = None
    qr_ok = bool(card and card.get("device"))
    values = dict(form or {})
    values.setdefault("amount", page.request.query_params.get("amount", ""))
    values.setdefault("channel", page.request.query_params.get("channel", ""))
    flash, s.flash = s.flash, None
    return await page.render(
        "card.html",
        status=status,
        card=card,
        card_missing=card_error is not None and card_error.status == 404,
        qr_ok=qr_ok,
        qr_seconds=max(10, int(page.web.settings.card.qr_validity_seconds) // 2),
        topups=(topups or [])[:10],
        organisations=active,
        home=home,
        errors=errors or {},
        values=values,
        channels=CHANNELS,
        idempotency_key=secrets.token_urlsafe(24),
        flash=flash,
    )


async def _guarded(page: Page, work: Any, return_to: str) -> Response[Any]:
    try:
        result: Response[Any] = await work()
    except SignInRequired:
        page.session.flash = page.t("session_expired")
        return await page.redirect(_login_redirect(return_to))
    return result


@get("/", operation_id="WebCitizenHome", include_in_schema=False)
async def card_page(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "citizen":
        return await page.render("landing.html", return_to=local_path(_here(request), AREA))
    return await _guarded(page, lambda: _card_page(page), _here(request))


@get("/qr.svg", operation_id="WebCitizenQr", include_in_schema=False)
async def qr(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    """The demo phone's current ride QR (SVG), polled by card.js before the code expires."""
    page = await _page(web, request)
    try:
        token = await _token(page)
        response = await web.api.send(
            "GET", "/api/v1/cards/me/demo-phone/qr", token=token, params={"kind": "svg"}
        )
    except SignInRequired:
        return Response(b"", status_code=401, headers={"Cache-Control": "no-store"})
    if response.status_code != 200:
        return Response(b"", status_code=response.status_code, headers={"Cache-Control": "no-store"})
    svg: Response[Any] = Response(
        response.content, media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )
    return svg


@get("/status", operation_id="WebCitizenStatus", include_in_schema=False)
async def status(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    """The card's status and balance for the page's polling (JSON)."""
    page = await _page(web, request)
    try:
        card = await _call(page, "GET", "/api/v1/cards/me")
    except SignInRequired:
        return await page.json({"signed_in": False}, status=401)
    except ApiError as exc:
        return await page.json({"signed_in": True, "error": str(exc)}, status=exc.status)
    balance = (card.get("epurse") or {}).get("balance")
    return await page.json({"signed_in": True, "status": card.get("status"), "balance": balance})


@post("/card/{action:str}", operation_id="WebCitizenCardAction", include_in_schema=False, status_code=303)
async def card_action(request: Req, web: NamedDependency[WebRuntime], action: FromPath[str]) -> Response[Any]:
    page = await _page(web, request)
    form = await page.form()
    if not page.csrf_ok(form):
        page.session.flash = page.t("err_csrf")
        return await page.redirect(AREA)

    async def work() -> Response[Any]:
        try:
            if action in CARD_ACTIONS:
                await _call(page, "POST", f"/api/v1/cards/me/{CARD_ACTIONS[action]}")
                page.session.flash = page.t(f"done_{action}")
            elif action == "apply":
                await _call(page, "POST", "/api/v1/cards")
            elif action == "demo-phone":
                await _call(page, "POST", "/api/v1/cards/me/demo-phone")
            else:
                return await page.redirect(AREA)
        except ApiError as exc:
            page.session.flash = page.t("err_generic", detail=exc)
        return await page.redirect(AREA)

    return await _guarded(page, work, AREA)


@post("/act-for", operation_id="WebCitizenActFor", include_in_schema=False, status_code=303)
async def act_for(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    """Act for an organisation where the person holds a role (a token exchange), or for oneself."""
    page = await _page(web, request)
    form = await page.form()
    if not page.csrf_ok(form):
        page.session.flash = page.t("err_csrf")
        return await page.redirect(AREA)
    s = page.session

    async def work() -> Response[Any]:
        chosen = form.get("organisation", "")
        s.org_id = s.org_name = s.org_token = None
        s.org_expires_at = 0.0
        if chosen:
            memberships = await _call(page, "GET", "/api/v1/identity/organisations")
            match = next(
                (
                    m
                    for m in memberships
                    if str(m.get("organisation_id")) == chosen and m.get("status") == "active"
                ),
                None,
            )
            if match is None:
                s.flash = page.t("err_generic", detail="organisation")
                return await page.redirect(AREA)
            s.org_id, s.org_name = chosen, str(match.get("name"))
            try:
                await _org_token(page)
            except ApiError as exc:
                s.org_id = s.org_name = None
                s.flash = page.t("err_generic", detail=exc)
        page.changed()
        return await page.redirect(AREA)

    return await _guarded(page, work, AREA)


def citizen_router() -> Router:
    from litestar.static_files import create_static_files_router

    from backend.web.organisations import ORGANISATION_HANDLERS
    from backend.web.topups import create_topup, simulate_pay, topup_page, topup_status

    static = create_static_files_router(
        path="/static",
        directories=[str(__import__("pathlib").Path(__file__).parent / "static")],
        include_in_schema=False,
        name="web-static",
        opt={"no_metrics": True},
    )
    return Router(
        path="/web",
        route_handlers=[
            card_page, login, callback, logout, qr, status, card_action, act_for, create_topup,
            topup_page, topup_status, simulate_pay, *ORGANISATION_HANDLERS, static,
        ],
        include_in_schema=False,
    )  # fmt: skip


def referer_path(request: Req) -> str | None:
    ref = request.headers.get("referer")
    return urlsplit(ref).path if ref else None
