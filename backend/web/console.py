"""The operators' console under ``/console/``: sign-in through identity's operator sign-in; the
terminals (online, last sign-on, versions, uploads per minute), transactions per minute, the
suspense queue, settlements and their files, reconciliation reports, the audit log, and card and
person search with masked personal data. The operator's bearer token stays in the session."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from backend.web import reports
from backend.web.pages import Page, WebRuntime, local_path
from backend.web.sessions import CONSOLE_COOKIE
from backend.web.upstream import ApiError

__all__ = ["console_router", "mask_query"]

Req = Request[Any, Any, Any]
AREA: Final = "/console/"
READERS: Final = frozenset({"support", "security_admin", "auditor"})
AUDITORS: Final = frozenset({"auditor", "security_admin"})
_ID_NUMBER: Final = re.compile(r"^\d{17}[\dXx]$")
_MOBILE: Final = re.compile(r"^1\d{10}$")
_CARD_NUMBER: Final = re.compile(r"^\d{8,20}$")


class SignInRequired(Exception):
    pass


async def _page(web: WebRuntime, request: Req) -> Page:
    return await Page.open(web, request, CONSOLE_COOKIE, AREA)


def _login_redirect(request: Req) -> str:
    query = request.url.query
    here = request.url.path + (f"?{query}" if query else "")
    return "/console/login?" + urlencode({"next": here})


async def _call(page: Page, method: str, path: str, **kwargs: Any) -> Any:
    s = page.session
    if s.kind != "operator" or not s.operator_token:
        raise SignInRequired
    try:
        return await page.web.api.call(method, path, token=s.operator_token, **kwargs)
    except ApiError as exc:
        if exc.unauthenticated:
            page.sign_out()
            raise SignInRequired from exc
        raise


def mask_query(query: str) -> str:
    """What the page may echo of a search: ID numbers and mobiles masked, anything else as typed."""
    from identity.checks import mask_mobile, mask_resident_id

    if _ID_NUMBER.match(query):
        return mask_resident_id(query.upper())
    if _MOBILE.match(query):
        return mask_mobile(query)
    return query if _CARD_NUMBER.match(query) else "…"


def _roles(page: Page) -> frozenset[str]:
    return frozenset(page.session.operator_roles)


# -- sign-in -------------------------------------------------------------------------------------


@get("/login", operation_id="WebConsoleLoginPage", include_in_schema=False)
async def login_page(
    request: Req, web: NamedDependency[WebRuntime], next: FromQuery[str | None] = None
) -> Response[Any]:
    page = await _page(web, request)
    flash, page.session.flash = page.session.flash, None
    return await page.render(
        "console_login.html", errors={}, username="", next=local_path(next, AREA), flash=flash
    )


@post("/login", operation_id="WebConsoleLogin", include_in_schema=False, status_code=303)
async def login(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    form = await page.form()
    username, password = form.get("username", "").strip(), form.get("password", "")
    target = local_path(form.get("next"), AREA)
    errors: dict[str, str] = {}
    if not page.csrf_ok(form):
        errors["form"] = page.t("err_csrf")
    if not username:
        errors["username"] = page.t("err_username_required")
    if not password:
        errors["password"] = page.t("err_password_required")
    if not errors:
        try:
            issued = await web.api.call(
                "POST",
                "/api/v1/identity/operator-sessions",
                json={"username": username, "password": password},
            )
            me = await web.api.call("GET", "/api/v1/identity/session", token=issued["token"])
        except ApiError as exc:
            errors["password" if exc.status in {401, 403, 422} else "form"] = (
                page.t("err_credentials")
                if exc.status in {401, 403, 422}
                else page.t("err_generic", detail=exc)
            )
        else:
            page.sign_out()  # a new session id: a planted pre-login cookie gets nothing
            s = page.session
            s.kind = "operator"
            s.operator_token = issued["token"]
            s.operator_name = username
            s.operator_roles = sorted(me.get("operator_roles") or [])
            return await page.redirect(target)
    return await page.render(
        "console_login.html", status=422, errors=errors, username=username, next=target, flash=None
    )


@post("/logout", operation_id="WebConsoleLogout", include_in_schema=False, status_code=303)
async def logout(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    form = await page.form()
    if page.csrf_ok(form) and page.session.operator_token:
        try:
            await web.api.send(
                "DELETE", "/api/v1/identity/sessions/current", token=page.session.operator_token
            )
        finally:
            page.sign_out()
    return await page.redirect("/console/login")


# -- the dashboard --------------------------------------------------------------------------------


@get("/", operation_id="WebConsoleHome", include_in_schema=False)
async def dashboard(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    from card.terminal.spec import RecordReason

    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect(_login_redirect(request))
    if not _roles(page) & READERS:
        return await page.render("message.html", status=403, message=page.t("forbidden"))
    try:
        listed = await _call(page, "GET", "/api/v1/admin/terminals")
        suspense = await _call(page, "GET", "/api/v1/admin/terminals/suspense")
    except SignInRequired:
        return await page.redirect(_login_redirect(request))
    ids = [str(t["id"]) for t in listed]
    online = await reports.terminals_online(web.redis, ids)
    uploads = await reports.uploads_per_minute(web.pool)
    terminals = reports.terminal_rows(listed, online, uploads)
    for item in suspense:
        try:
            item["reason_name"] = RecordReason(int(item["reason"])).name.lower().replace("_", " ")
        except (ValueError, TypeError):
            item["reason_name"] = str(item.get("reason"))
    return await page.render(
        "console.html",
        terminals=terminals,
        online_count=sum(t.online for t in terminals),
        suspense=suspense[:100],
        settlements=await reports.settlements(web.pool),
        terminal_settlements=await reports.terminal_settlements(web.pool),
        reconciliations=await reports.reconciliations(web.pool),
        chart_version=int(dt.datetime.now(dt.UTC).timestamp()) // 15,
    )


async def _reader_now(page: Page) -> bool:
    """Whether the signed-in operator may read the console now, as identity says: the token
    checked (a revoked session raises ``SignInRequired``) and the roles it holds now, not those
    saved at sign-in. The chart and the settlement files read PostgreSQL directly, so no API call
    would refuse them otherwise."""
    if page.session.kind != "operator" or not _roles(page) & READERS:
        return False
    try:
        me = await _call(page, "GET", "/api/v1/identity/session")
    except ApiError:  # identity cannot say now: the files stay closed
        return False
    return bool(frozenset(me.get("operator_roles") or ()) & READERS)


@get("/chart.svg", operation_id="WebConsoleChart", include_in_schema=False)
async def chart(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    try:
        allowed = await _reader_now(page)
    except SignInRequired:
        allowed = False
    if not allowed:
        return Response(b"", status_code=401)
    data = await reports.activity(web.pool)
    svg = reports.activity_chart(
        data, title=page.t("chart_title"), accepted=page.t("accepted"), rejected=page.t("rejected")
    )
    # Shown as an <img> (no script runs); if opened on its own, pygal's config script stays inert.
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'",
    }
    return Response(svg, media_type="image/svg+xml", headers=headers)


@get(
    "/settlements/{business_date:date}/{operator:str}",
    operation_id="WebConsoleSettlementFile",
    include_in_schema=False,
)
async def settlement_file(
    request: Req, web: NamedDependency[WebRuntime], business_date: FromPath[dt.date], operator: FromPath[str]
) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect(_login_redirect(request))
    try:
        allowed = await _reader_now(page)
    except SignInRequired:  # revoked or expired: signed out (``_call``), and asked to sign in again
        return await page.redirect(_login_redirect(request))
    if not allowed:
        return await page.render("message.html", status=403, message=page.t("forbidden"))
    found = await reports.settlement_file(web.pool, business_date, operator)
    if found is None:
        return await page.render("message.html", status=404, message=page.t("no_settlements"))
    name, body = found
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "settlement.txt"
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe}"', "Cache-Control": "no-store"},
    )


# -- search and audit -----------------------------------------------------------------------------


async def _holder(page: Page, holder_id: str, cache: dict[str, Any]) -> Any:
    if holder_id not in cache:
        try:
            cache[holder_id] = await _call(page, "GET", f"/api/v1/identity/admin/accounts/{holder_id}")
        except ApiError:
            cache[holder_id] = None
    return cache[holder_id]


@get("/search", operation_id="WebConsoleSearch", include_in_schema=False)
async def search(
    request: Req, web: NamedDependency[WebRuntime], q: FromQuery[str | None] = None
) -> Response[Any]:
    """Cards by number, people by mobile or ID number (the API masks; the page never echoes a number)."""
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect("/console/login?next=/console/search")
    query = (q or "").strip().replace(" ", "")
    errors: dict[str, str] = {}
    people: list[Any] = []
    cards: list[Any] = []
    holders: dict[str, Any] = {}
    try:
        if q is not None and not query:
            errors["q"] = page.t("err_query_required")
        elif query and not (_ID_NUMBER.match(query) or _MOBILE.match(query) or _CARD_NUMBER.match(query)):
            errors["q"] = page.t("err_query_format")
        elif query:
            if _ID_NUMBER.match(query) or _MOBILE.match(query):
                field = "id_number" if _ID_NUMBER.match(query) else "mobile"
                people = await _call(
                    page, "GET", "/api/v1/identity/admin/accounts", params={field: query.upper()}
                )
                for person in people[:10]:
                    found = await _call(
                        page, "GET", "/api/v1/admin/cards", params={"holder_id": str(person["account_id"])}
                    )
                    cards.extend(found)
                    holders[str(person["account_id"])] = person
            else:
                cards = await _call(page, "GET", "/api/v1/admin/cards", params={"card_number": query})
                for card in cards[:20]:
                    await _holder(page, str(card["holder_id"]), holders)
    except SignInRequired:
        return await page.redirect("/console/login?next=/console/search")
    except ApiError as exc:
        errors["q"] = page.t("err_generic", detail=exc) if exc.status != 403 else page.t("forbidden")
    return await page.render(
        "console_search.html",
        status=422 if errors else 200,
        errors=errors,
        searched=mask_query(query) if query and not errors else None,
        people=people,
        cards=cards,
        holders=holders,
    )


@get("/audit", operation_id="WebConsoleAudit", include_in_schema=False)
async def audit(
    request: Req, web: NamedDependency[WebRuntime], subject: FromQuery[str | None] = None
) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect("/console/login?next=/console/audit")
    errors: dict[str, str] = {}
    entries: list[Any] = []
    value = (subject or "").strip()
    try:
        if subject is not None:
            try:
                subject_id = uuid.UUID(value)
            except ValueError:
                errors["subject"] = page.t("err_subject_format")
            else:
                if not _roles(page) & AUDITORS:
                    errors["subject"] = page.t("forbidden")
                else:
                    entries = await _call(page, "GET", f"/api/v1/identity/admin/audit/{subject_id}")
    except SignInRequired:
        return await page.redirect("/console/login?next=/console/audit")
    except ApiError as exc:
        errors["subject"] = page.t("err_generic", detail=exc)
    return await page.render(
        "console_audit.html",
        status=422 if errors else 200,
        errors=errors,
        subject=value if not errors else "",
        entries=entries[-200:][::-1],
    )


def console_router() -> Router:
    # Both import this module's helpers, hence imported here.
    from backend.web.console_reconcile import ROUTES as RECONCILIATION
    from backend.web.console_suspense import resolve_suspense

    return Router(
        path="/console",
        route_handlers=[
            login_page,
            login,
            logout,
            dashboard,
            chart,
            settlement_file,
            search,
            audit,
            resolve_suspense,
            *RECONCILIATION,
        ],
        include_in_schema=False,
    )
