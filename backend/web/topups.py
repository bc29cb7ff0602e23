"""The citizen page's top-ups: the form (amount in yuan, a channel, an idempotency key rendered
with the form), the order page following the order until it is credited, and in development the
button that pays at the channel's simulator."""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import httpx
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from backend.web.citizen import (
    CHANNELS,
    SignInRequired,
    _call,
    _card_page,
    _guarded,
    _here,
    _login_redirect,
    _optional,
    _page,
)
from backend.web.pages import Page, WebRuntime
from backend.web.upstream import ApiError

__all__ = ["create_topup", "simulate_pay", "topup_page", "topup_status"]

Req = Request[Any, Any, Any]
_AMOUNT = re.compile(r"^\d{1,7}(\.\d{1,2})?$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _amount_error(page: Page, raw: str) -> tuple[int | None, str | None]:
    raw = raw.strip().replace("，", ".").replace("¥", "")
    if not raw:
        return None, page.t("err_amount_required")
    if not _AMOUNT.match(raw):
        return None, page.t("err_amount_format")
    try:
        fen = int(Decimal(raw) * 100)
    except InvalidOperation:
        return None, page.t("err_amount_format")
    payments = page.web.settings.payments
    if not payments.topup_min <= fen <= payments.topup_max:
        return None, page.t("err_amount_range", max=f"{payments.topup_max / 100:g}").replace(
            "0.01", f"{payments.topup_min / 100:g}"
        )
    return fen, None


# -- top-ups --------------------------------------------------------------------------------------


async def _replayable(page: Page, path: str, body: dict[str, Any], key: str) -> Any:
    """POST with an Idempotency-Key; a twin request still running (409) is waited for, then replayed."""
    for _ in range(50):
        try:
            return await _call(page, "POST", path, json=body, headers={"Idempotency-Key": key})
        except ApiError as exc:
            if exc.slug != "idempotency-key-in-progress":
                raise
        await asyncio.sleep(0.1)
    raise ApiError(409, {"detail": "the same top-up is still being created"})


@post("/topups", operation_id="WebCitizenTopup", include_in_schema=False, status_code=303)
async def create_topup(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    """Create the order and start paying, both under the form's idempotency key (a double click or a
    resubmitted form makes one order)."""
    page = await _page(web, request)
    form = await page.form()
    back = "/web/?" + urlencode({"amount": form.get("amount", ""), "channel": form.get("channel", "")})
    if not page.csrf_ok(form):
        if page.session.kind != "citizen":
            return await page.redirect(_login_redirect(back))
        page.session.flash = page.t("err_csrf")
        return await page.redirect(back)

    async def work() -> Response[Any]:
        errors: dict[str, str] = {}
        fen, problem = _amount_error(page, form.get("amount", ""))
        if problem:
            errors["amount"] = problem
        channel = form.get("channel", "")
        if channel not in CHANNELS:
            errors["channel"] = page.t("err_channel_required")
        key = form.get("idempotency_key", "")
        if not _KEY.match(key):
            key = secrets.token_urlsafe(24)
        if errors:
            return await _card_page(page, errors=errors, form=form, status=422)
        try:
            order = await _replayable(
                page, "/api/v1/payments/topups", {"amount": fen, "channel": channel}, key + ".create"
            )
            await _replayable(
                page, f"/api/v1/payments/topups/{order['id']}/pay", {"channel": channel}, key + ".pay"
            )
        except ApiError as exc:
            if exc.slug == "amount-refused":
                errors["amount"] = page.t("err_amount_refused", detail=exc)
            elif exc.slug in {"unknown-channel", "channel-unavailable"}:
                errors["channel"] = page.t("err_generic", detail=exc)
            else:
                errors["form"] = page.t("err_generic", detail=exc)
            return await _card_page(page, errors=errors, form=form, status=exc.status)
        return await page.redirect(f"/web/topups/{order['id']}")

    return await _guarded(page, work, back)


@get("/topups/{order_id:uuid}", operation_id="WebCitizenTopupOrder", include_in_schema=False)
async def topup_page(
    request: Req, web: NamedDependency[WebRuntime], order_id: FromPath[uuid.UUID]
) -> Response[Any]:
    page = await _page(web, request)

    async def work() -> Response[Any]:
        try:
            order = await _call(page, "GET", f"/api/v1/payments/topups/{order_id}")
        except ApiError as exc:
            return await page.render(
                "message.html", status=exc.status, message=page.t("err_generic", detail=exc)
            )
        card, _ = await _optional(page, "GET", "/api/v1/cards/me")
        flash, page.session.flash = page.session.flash, None
        return await page.render(
            "topup.html",
            order=order,
            card=card,
            simulator=_simulator_url(web, order.get("channel")) is not None,
            flash=flash,
        )

    return await _guarded(page, work, _here(request))


@get("/topups/{order_id:uuid}/status", operation_id="WebCitizenTopupStatus", include_in_schema=False)
async def topup_status(
    request: Req, web: NamedDependency[WebRuntime], order_id: FromPath[uuid.UUID]
) -> Response[Any]:
    page = await _page(web, request)
    try:
        order = await _call(page, "GET", f"/api/v1/payments/topups/{order_id}")
        card = await _call(page, "GET", "/api/v1/cards/me")
    except SignInRequired:
        return await page.json({"signed_in": False}, status=401)
    except ApiError as exc:
        return await page.json({"error": str(exc)}, status=exc.status)
    balance = (card.get("epurse") or {}).get("balance")
    return await page.json(
        {"state": order["state"], "state_text": page.t("state_" + order["state"]), "balance": balance}
    )


def _simulator_url(web: WebRuntime, channel: str | None) -> str | None:
    settings = web.settings
    if not settings.is_development or channel not in CHANNELS:
        return None
    url = settings.integrations.upstream(channel).url
    return str(url).rstrip("/") if url else None


@post(
    "/topups/{order_id:uuid}/simulate",
    operation_id="WebCitizenSimulatePay",
    include_in_schema=False,
    status_code=303,
)
async def simulate_pay(
    request: Req, web: NamedDependency[WebRuntime], order_id: FromPath[uuid.UUID]
) -> Response[Any]:
    """Development: pay the order at the channel's simulator (what the channel's app would do)."""
    page = await _page(web, request)
    form = await page.form()
    here = f"/web/topups/{order_id}"
    if not page.csrf_ok(form):
        return await page.redirect(here)

    async def work() -> Response[Any]:
        order = await _call(page, "GET", f"/api/v1/payments/topups/{order_id}")
        simulator = _simulator_url(web, order.get("channel"))
        if simulator is None:
            return await page.redirect(here)
        try:
            async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:
                answer = await client.post(
                    f"{simulator}/_control/pay/{order['order_no']}", json={"fail": False}
                )
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            page.session.flash = page.t("err_generic", detail=type(exc).__name__)
        return await page.redirect(here)

    return await _guarded(page, work, here)
