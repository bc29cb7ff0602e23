"""The citizen's organisations page under ``/web/organisations``: the organisations the person acts
for and their roles, the invitations waiting for an answer, and, for each organisation whose agents
the API lets them manage, its agents and invitations with the invitation form.

Every datum and every rule is identity's: the page calls the organisations API as the signed-in
person and shows its answers. Whether someone manages an organisation's agents is what the API
answers to listing them (403: the section is not shown), so no role rule is repeated here. Refusals
are shown next to the invitation form's fields or on a message page, in the page's language; an ID
number typed into the form is never shown back (the API itself answers masked ones).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from backend.web.citizen import _call, _guarded, _login_redirect, _page
from backend.web.pages import Page, WebRuntime
from backend.web.upstream import ApiError
from identity.auth import ORG_ROLES

__all__ = ["ORGANISATION_HANDLERS"]

Req = Request[Any, Any, Any]
HERE: Final = "/web/organisations"
_API: Final = "/api/v1/identity/organisations"
_CHINA: Final = dt.timezone(dt.timedelta(hours=8))
_ANSWERS: Final = ("accept", "decline")
# The page's buttons and the API call each makes; "withdraw" (an invitation) and "remove" (an
# agent) are the same call, named apart for the confirmation the person reads.
_AGENT_ACTIONS: Final[dict[str, tuple[str, dict[str, str] | None]]] = {
    "suspend": ("PATCH", {"status": "suspended"}),
    "reinstate": ("PATCH", {"status": "active"}),
    "withdraw": ("DELETE", None),
    "remove": ("DELETE", None),
}
_FIELDS: Final = ("id_number", "name", "roles", "ends_on")
# The API's (field, rule) on the invitation form, as the page's messages; any other rule on a
# field gets that field's general message, so the page never shows an English detail there.
_RULES: Final = {
    ("id_number", "no_matching_account"): "org_err_no_account",
    ("id_number", "already_agent"): "org_err_already_agent",
    ("id_number", "is_representative"): "org_err_is_representative",
    ("ends_on", "in_the_past"): "org_err_ends_past",
}
_BY_FIELD: Final = {
    "id_number": "org_err_id_number",
    "name": "org_err_name",
    "roles": "org_err_roles",
    "ends_on": "org_err_ends_on",
}
_BY_SLUG: Final = {
    "forbidden": "org_err_forbidden",
    "not-found": "org_err_no_invitation",
    "insufficient-assurance": "org_err_assurance",
    "conflict": "org_err_conflict",
    "too-many-requests": "org_err_too_many",
}


def refusal(page: Page, exc: ApiError) -> str:
    """A refusal that belongs to no field, in the page's language."""
    key = _BY_SLUG.get(exc.slug)
    return page.t(key) if key else page.t("err_generic", detail=exc)


def field_refusals(page: Page, exc: ApiError) -> dict[str, str]:
    """``{field: message}`` for the invitation form's fields the problem names."""
    found: dict[str, str] = {}
    for item in exc.problem.get("errors") or []:
        field = str(item.get("field") or "") if isinstance(item, dict) else ""
        if field in _FIELDS and field not in found:
            found[field] = page.t(_RULES.get((field, str(item.get("rule"))), _BY_FIELD[field]))
    return found


def last_day(valid_until: str | None) -> str | None:
    """The last day of an appointment, as the representative chose it: the API's ``valid_until``
    is the instant it ends, midnight after that day (China time), which read as a date would
    look one day too long."""
    if not valid_until:
        return None
    ends = dt.datetime.fromisoformat(valid_until).astimezone(_CHINA)
    return (ends - dt.timedelta(microseconds=1)).date().isoformat()


def _with_last_day(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**item, "last_day": last_day(item.get("valid_until"))} for item in items]


def _role_names(page: Page) -> dict[str, str]:
    return {role: page.t(f"role_{role}") for role in ORG_ROLES}


async def _managed(page: Page, memberships: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The organisations whose agents the API lists for this person, each with its agents."""
    managed: list[dict[str, Any]] = []
    for m in memberships:
        if m.get("status") != "active":
            continue
        org_id = str(m["organisation_id"])
        try:
            agents = await _call(page, "GET", f"{_API}/{org_id}/agents")
        except ApiError as exc:
            if exc.status == 403:
                continue  # not theirs to manage: no section, no form
            managed.append({"org": m, "agents": None, "error": refusal(page, exc)})
            continue
        managed.append({"org": m, "agents": _with_last_day(agents), "error": None})
    return managed


async def _organisations_page(
    page: Page,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, dict[str, Any]] | None = None,
    status: int = 200,
) -> Response[Any]:
    try:
        memberships: list[dict[str, Any]] = _with_last_day(await _call(page, "GET", _API))
    except ApiError as exc:
        return await _message(page, exc)
    flash, page.session.flash = page.session.flash, None
    return await page.render(
        "organisations.html",
        status=status,
        mine=[m for m in memberships if m.get("status") != "invited"],
        invitations=[m for m in memberships if m.get("status") == "invited"],
        managed=await _managed(page, memberships),
        role_names=_role_names(page),
        roles=ORG_ROLES,
        errors=errors or {},
        values=values or {},
        flash=flash,
    )


async def _message(page: Page, exc: ApiError) -> Response[Any]:
    return await page.render("organisations_message.html", status=exc.status, message=refusal(page, exc))


async def _refused_csrf(page: Page) -> Response[Any]:
    """A form without its token does nothing: sign in first, or back to the page with a note."""
    if page.session.kind != "citizen":
        return await page.redirect(_login_redirect(HERE))
    page.session.flash = page.t("err_csrf")
    return await page.redirect(HERE)


@get("/organisations", operation_id="WebCitizenOrganisations", include_in_schema=False)
async def organisations_page(request: Req, web: NamedDependency[WebRuntime]) -> Response[Any]:
    page = await _page(web, request)
    if page.session.kind != "citizen":
        return await page.redirect(_login_redirect(HERE))
    return await _guarded(page, lambda: _organisations_page(page), HERE)


@post(
    "/organisations/{organisation_id:uuid}/invitation/{answer:str}",
    operation_id="WebCitizenAnswerInvitation",
    include_in_schema=False,
    status_code=303,
)
async def answer_invitation(
    request: Req,
    web: NamedDependency[WebRuntime],
    organisation_id: FromPath[uuid.UUID],
    answer: FromPath[str],
) -> Response[Any]:
    """The invited person accepts or declines (the API checks that an invitation is theirs)."""
    page = await _page(web, request)
    form = await page.form()
    if not page.csrf_ok(form) or answer not in _ANSWERS:
        return await _refused_csrf(page)

    async def work() -> Response[Any]:
        try:
            membership = await _call(page, "POST", f"{_API}/{organisation_id}/invitation/{answer}")
        except ApiError as exc:
            return await _message(page, exc)
        page.session.flash = page.t(f"org_done_{answer}", name=membership.get("name", ""))
        return await page.redirect(HERE)

    return await _guarded(page, work, HERE)


@post(
    "/organisations/{organisation_id:uuid}/agents",
    operation_id="WebCitizenInviteAgent",
    include_in_schema=False,
    status_code=303,
)
async def invite_agent(
    request: Req, web: NamedDependency[WebRuntime], organisation_id: FromPath[uuid.UUID]
) -> Response[Any]:
    """The invitation form: the API checks the person, the roles, the end date and who may invite."""
    page = await _page(web, request)
    data = await request.form()
    form = {k: str(v) for k, v in data.items()}
    if not page.csrf_ok(form):
        return await _refused_csrf(page)
    org = str(organisation_id)
    roles = [str(r) for r in data.getall("roles")] if "roles" in data else []
    body: dict[str, Any] = {
        "id_number": form.get("id_number", "").strip(),
        "name": form.get("name", "").strip(),
        "roles": roles,
    }
    if form.get("ends_on", "").strip():
        body["ends_on"] = form["ends_on"].strip()  # left out: identity's default term
    # What the form shows again after a refusal: never the ID number.
    shown = {"name": body["name"], "roles": roles, "ends_on": form.get("ends_on", "")}

    async def work() -> Response[Any]:
        try:
            agent = await _call(page, "POST", f"{_API}/{org}/agents", json=body)
        except ApiError as exc:
            if exc.slug in {"forbidden", "not-found", "insufficient-assurance"}:
                return await _message(page, exc)
            errors = field_refusals(page, exc) or {"form": refusal(page, exc)}
            return await _organisations_page(
                page, errors={org: errors}, values={org: shown}, status=exc.status
            )
        page.session.flash = page.t("org_done_invite", name=agent.get("name", ""))
        return await page.redirect(HERE)

    return await _guarded(page, work, HERE)


@post(
    "/organisations/{organisation_id:uuid}/agents/{agent_id:uuid}/{action:str}",
    operation_id="WebCitizenChangeAgent",
    include_in_schema=False,
    status_code=303,
)
async def change_agent(
    request: Req,
    web: NamedDependency[WebRuntime],
    organisation_id: FromPath[uuid.UUID],
    agent_id: FromPath[uuid.UUID],
    action: FromPath[str],
) -> Response[Any]:
    """Suspend, reinstate, withdraw an invitation or end an appointment, as the API allows."""
    page = await _page(web, request)
    form = await page.form()
    if not page.csrf_ok(form) or action not in _AGENT_ACTIONS:
        return await _refused_csrf(page)
    method, body = _AGENT_ACTIONS[action]

    async def work() -> Response[Any]:
        path = f"{_API}/{organisation_id}/agents/{agent_id}"
        try:
            agent = await _call(page, method, path, json=body)
        except ApiError as exc:
            return await _message(page, exc)
        page.session.flash = page.t(f"org_done_{action}", name=agent.get("name", ""))
        return await page.redirect(HERE)

    return await _guarded(page, work, HERE)


ORGANISATION_HANDLERS: Final = (organisations_page, answer_invitation, invite_agent, change_agent)
