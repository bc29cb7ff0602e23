"""The console's reconciliation suspense items: ``/console/reconciliation`` lists them (open by
default, by business date and channel) and, for the roles that may resolve them (support,
security_admin), a form per open item posting to ``/console/reconciliation/{id}/resolve``.

A page of its own rather than a table on the dashboard: the dashboard reloads every 15 s and would
throw away a note being typed. Everything goes through the payments admin API as the signed-in
operator (``console._call``), so its roles, checks and audit apply as to any other client; the
page only offers, per item, the resolutions the rules allow for its kind, and shows the API's
refusal next to the form it came from.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from backend.web.console import READERS, SignInRequired, _call, _login_redirect, _page, _roles
from backend.web.pages import Page, WebRuntime, local_path
from backend.web.upstream import ApiError

__all__ = ["ROUTES", "resolve_suspense", "suspense_page"]

Req = Request[Any, Any, Any]
PAGE: Final = "/console/reconciliation"
API: Final = "/api/v1/admin/payments/suspense"
RESOLVERS: Final = frozenset({"support", "security_admin"})
STATES: Final = ("open", "resolved", "all")
KIND_LABELS: Final = {
    "channel_only": "channel_only",
    "platform_only": "platform_only",
    "amount_mismatch": "mismatched",
}


def _choices() -> dict[str, list[str]]:
    """Per kind of item (``<kind>`` of a payment, ``<kind>:refund`` of a refund), the resolutions
    the payments rules allow, in the rules' order."""
    from payments.clearing.suspense_rules import ALLOWED, Resolution

    return {
        f"{kind}{':refund' if refund else ''}": [r.value for r in Resolution if r in allowed]
        for (kind, refund), allowed in ALLOWED.items()
    }


def _filters(state: str | None, business_date: str | None, channel: str | None) -> dict[str, str]:
    wanted = {"state": state if state in STATES else "open"}
    if business_date:
        wanted["business_date"] = business_date.strip()
    if channel and channel in {"unionpay", "alipay", "wechatpay"}:
        wanted["channel"] = channel
    return wanted


async def _render(
    page: Page,
    filters: dict[str, str],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
) -> Response[Any]:
    """The list (through the API) with the filters, and the error and values of a refused form."""
    errors = dict(errors or {})
    items: list[Any] = []
    try:
        if "business_date" in filters:
            dt.date.fromisoformat(filters["business_date"])
    except ValueError:
        errors["business_date"] = page.t("err_date_format")
        status = 422
    else:
        try:
            items = (await _call(page, "GET", API, params=filters))["items"]
        except ApiError as exc:
            errors["list"] = page.t("forbidden") if exc.status == 403 else page.t("err_generic", detail=exc)
            status = exc.status if status == 200 else status
    may_resolve = bool(_roles(page) & RESOLVERS)
    # A form's error goes next to it; with no form to show (the item left the list, or the roles
    # offer none), above the list.
    shown = {f"item-{i['id']}" for i in items if i["state"] == "open"} if may_resolve else set()
    for key in [k for k in errors if k.startswith("item-") and k not in shown]:
        errors["list"] = errors.pop(key)
    flash, page.session.flash = page.session.flash, None
    return await page.render(
        "console_reconcile.html",
        status=status,
        items=items,
        filters=filters,
        here=f"{PAGE}?{urlencode(filters)}",
        errors=errors,
        typed=typed or {},
        may_resolve=may_resolve,
        choices=_choices(),
        kind_labels=KIND_LABELS,
        flash=flash,
    )


@get("/reconciliation", operation_id="WebConsoleSuspense", include_in_schema=False)
async def suspense_page(
    request: Req,
    web: NamedDependency[WebRuntime],
    wanted: Annotated[str | None, QueryParameter(name="state")] = None,  # "state" is Litestar's
    business_date: FromQuery[str | None] = None,
    channel: FromQuery[str | None] = None,
) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect(_login_redirect(request))
    if not _roles(page) & READERS:
        return await page.render("message.html", status=403, message=page.t("forbidden"))
    try:
        return await _render(page, _filters(wanted, business_date, channel))
    except SignInRequired:
        return await page.redirect(_login_redirect(request))


def _refusal(page: Page, exc: ApiError) -> str:
    if exc.status == 403:
        return page.t("forbidden")
    if exc.status == 404:
        return page.t("err_suspense_item_not_found")
    if exc.slug == "suspense-item-resolved":
        return page.t("err_suspense_item_resolved")
    if exc.status == 409:
        return page.t("err_resolve_refused", detail=exc)
    if exc.status == 422:
        return page.t("err_resolve_invalid", detail=exc)
    return page.t("err_generic", detail=exc)


@post(
    "/reconciliation/{item_id:uuid}/resolve",
    operation_id="WebConsoleResolveSuspense",
    include_in_schema=False,
    status_code=303,
)
async def resolve_suspense(
    request: Req, web: NamedDependency[WebRuntime], item_id: FromPath[uuid.UUID]
) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect("/console/login?" + urlencode({"next": PAGE}))
    form = await page.form()
    back = local_path(form.get("back"), PAGE)
    filters = _filters(*_back_filters(back))
    typed = {
        "id": str(item_id),
        "resolution": form.get("resolution", ""),
        "note": form.get("note", ""),
        "reference": form.get("reference", ""),
    }
    key = f"item-{item_id}"
    try:
        if not page.csrf_ok(form):
            return await _render(page, filters, status=403, errors={key: page.t("err_csrf")}, typed=typed)
        body: dict[str, str] = {"resolution": typed["resolution"], "note": typed["note"]}
        if typed["reference"].strip():
            body["reference"] = typed["reference"]
        try:
            await _call(page, "POST", f"{API}/{item_id}/resolve", json=body)
        except ApiError as exc:
            return await _render(
                page, filters, status=exc.status, errors={key: _refusal(page, exc)}, typed=typed
            )
    except SignInRequired:
        return await page.redirect("/console/login?" + urlencode({"next": back}))
    page.session.flash = page.t("suspense_resolved_flash")
    return await page.redirect(back)


def _back_filters(back: str) -> tuple[str | None, str | None, str | None]:
    """The list's filters from the page the form was on (its ``back`` path and query)."""
    query = parse_qs(urlsplit(back).query)
    first = {name: values[0] for name, values in query.items() if values}
    return first.get("state"), first.get("business_date"), first.get("channel")


ROUTES: Final = (suspense_page, resolve_suspense)
