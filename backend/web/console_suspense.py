"""The console's suspense queue resolution: the dashboard's table gives ``support`` and
``security_admin`` operators a form per open entry (accept where the reason allows it, reject, a
note), posted here and passed to the admin API as that operator (docs/terminal-protocol.md §5.4).

The API decides and audits everything (the roles too: a session's roles may have changed since
sign-in); the page only refuses what it can tell by itself (a form without its CSRF token, no
note, a role the session never had) and says in the operator's language why the API refused.
"""

from __future__ import annotations

import re
from typing import Any, Final

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from backend.web.console import SignInRequired, _call, _page, _roles
from backend.web.pages import WebRuntime
from backend.web.upstream import ApiError

__all__ = ["RESOLVERS", "resolve_suspense"]

RESOLVERS: Final = frozenset({"support", "security_admin"})
_TERMINAL_ID: Final = re.compile(r"^[0-9A-Z-]{1,16}$")  # as card.terminals.id
_NOTE_MAX: Final = 500  # as the API's
# Back to the dashboard after signing in again, not to this form's address (a POST only).
_SIGN_IN: Final = "/console/login?next=/console/"
# The API's problem types (card.terminal.host.suspense) → the page's message.
_REFUSALS: Final = {
    "suspense-not-found": "err_suspense_not_found",
    "suspense-resolved": "err_suspense_resolved",
    "suspense-not-acceptable": "err_suspense_not_acceptable",
    "suspense-record-unverified": "err_suspense_unverified",
    "suspense-card-counter-taken": "err_suspense_counter_taken",
    "validation-error": "err_suspense_note",
    "forbidden": "forbidden",
}


@post(
    "/suspense/{terminal_id:str}/{serial:int}/resolve",
    operation_id="WebConsoleResolveSuspense",
    include_in_schema=False,
    status_code=303,
)
async def resolve_suspense(
    request: Request[Any, Any, Any],
    web: NamedDependency[WebRuntime],
    terminal_id: FromPath[str],
    serial: FromPath[int],
) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "operator":
        return await page.redirect(_SIGN_IN)
    form = await page.form()
    if not page.csrf_ok(form):
        return await page.render("message.html", status=403, message=page.t("err_csrf"))
    if not _roles(page) & RESOLVERS:
        return await page.render("message.html", status=403, message=page.t("forbidden"))
    decision, note = form.get("decision", ""), form.get("note", "").strip()
    if decision not in {"accept", "reject"} or not 1 <= len(note) <= _NOTE_MAX:
        return await page.render("message.html", status=422, message=page.t("err_suspense_note"))
    if not _TERMINAL_ID.fullmatch(terminal_id):  # never put what the path says into the API's
        return await page.render("message.html", status=404, message=page.t("err_suspense_not_found"))
    try:
        await _call(
            page,
            "POST",
            f"/api/v1/admin/terminals/suspense/{terminal_id}/{serial}/resolve",
            json={"decision": decision, "note": note},
        )
    except SignInRequired:
        return await page.redirect(_SIGN_IN)
    except ApiError as exc:
        if exc.slug == "suspense-ledger-refused":
            message = page.t("err_suspense_ledger", detail=exc)
        elif exc.slug in _REFUSALS:
            message = page.t(_REFUSALS[exc.slug])
        else:
            message = page.t("err_generic", detail=exc)
        return await page.render(
            "message.html", status=exc.status if exc.status < 500 else 502, message=message
        )
    return await page.redirect("/console/#suspense")
