"""The login, step-up and consent pages of a parked authorization request (plain HTML forms).

Each form carries a CSRF token, an HMAC over the interaction id and this browser's id (the
``citizen_bid`` cookie), and the interaction only answers the browser that started it (a link sent
to someone else does nothing). Login uses identity's own services: mobile + one-time code, or
mobile + password; step-up to L3 uses the person's TOTP.

A login in a browser without an SSO session, or whose session is another person's, opens a new SSO
session (ASVS 7.2.4) and ends the one this browser had (its grants, back-channel logout). The same
person signing in again (``prompt=login``, an expired ``max_age``, ``prompt=select_account``) is a
re-authentication (OpenID Connect Core §3.1.2.1), not a logout: the session keeps its ``sid`` (the
one in the ID tokens and logout tokens its clients hold, OpenID Connect Back-Channel Logout §2.4),
its clients and their grants, and takes the new authentication time, level, methods and identity
session; the previous identity session is revoked. The cookie is a MAC over the sid that only this
server mints, so keeping it lets nobody but the same person's browser in.
"""

from __future__ import annotations

import html
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from identity.checks import mask_mobile
from identity.errors import IdentityError
from identity.oidc.authorize import (
    Interaction,
    advance,
    error_page,
    load_interaction,
    redirect,
    redirect_error,
    save_interaction,
)
from identity.oidc.errors import ErrorPage, OAuthError
from identity.oidc.pages import Fragment, page, render, text
from identity.oidc.provider import BROWSER_COOKIE, Provider
from identity.oidc.request import RedirectError
from identity.oidc.sso import COOKIE, SignIn

__all__ = ["InteractionController"]

Req = Request[Any, Any, Any]


def _logo(uri: str | None) -> Fragment:
    return Fragment(f'<img src="{html.escape(uri)}" alt="">' if uri and uri.startswith("https://") else "")


class InteractionController(Controller):
    path = "/oidc/interaction/{iid:str}"
    tags = ["oidc"]  # noqa: RUF012
    include_in_schema = False

    async def _load(self, oidc: Provider, request: Req, iid: str, form: dict[str, str] | None) -> Interaction:
        ia = await load_interaction(oidc, iid)
        browser = request.cookies.get(BROWSER_COOKIE)
        if ia is None or browser != ia.browser:
            raise ErrorPage(
                "invalid_request", "This sign-in has expired or belongs to another browser; start again."
            )
        if form is not None and not oidc.csrf_ok(ia.iid, browser, form.get("csrf")):
            raise ErrorPage("invalid_request", "The form has expired (CSRF check failed); start again.", 403)
        return ia

    async def _form(self, request: Req) -> dict[str, str]:
        form = await request.form()
        return {k: str(v) for k, v in form.items()}

    async def _page(
        self, oidc: Provider, request: Req, ia: Interaction, *, error: str | None = None, status: int = 200
    ) -> Response[Any]:
        """Show what the interaction needs now, or finish it."""
        session = await oidc.current_session(request)
        from identity.oidc.authorize import decide

        try:
            step = await decide(oidc, ia.request, session, ia)
        except RedirectError as exc:
            await oidc.redis.delete(f"oidc:ia:{ia.iid}")
            return redirect_error(oidc, exc)
        if step == "issue":
            return await advance(oidc, request, ia.request, ia)
        client = await oidc.clients.get(ia.request.client_id)
        assert client is not None
        locale = ia.request.ui_locale
        base = f"/oidc/interaction/{ia.iid}"
        csrf = oidc.csrf(ia.iid, ia.browser)
        error_html = Fragment(f'<p class="error">{html.escape(error)}</p>' if error else "")
        if step == "login":
            mobile = ia.code_sent_to or ia.request.login_hint or ""
            code_form = Fragment("")
            if ia.code_sent_to:
                code_form = render(
                    "code_form",
                    base=base,
                    csrf=csrf,
                    mobile=ia.code_sent_to,
                    code_sent=text(locale, "code_sent", mobile=mask_mobile(ia.code_sent_to)),
                    code_label=text(locale, "code_label"),
                    sign_in=text(locale, "sign_in"),
                )
            keys = (
                "sms_legend",
                "password_legend",
                "mobile_label",
                "password_label",
                "send_code",
                "sign_in",
                "cancel",
            )
            body = render(
                "login",
                base=base,
                csrf=csrf,
                mobile=mobile,
                error=error_html,
                code_form=code_form,
                client_logo=_logo(client.logo_uri),
                intro=text(locale, "login_intro", client=client.name),
                **{k: text(locale, k) for k in keys},
            )
            return page(locale, text(locale, "login_title"), body, status)
        if step == "step_up":
            body = render(
                "totp",
                base=base,
                csrf=csrf,
                error=error_html,
                intro=text(locale, "totp_intro", client=client.name),
                code_label=text(locale, "code_label"),
                confirm=text(locale, "confirm"),
                cancel=text(locale, "cancel"),
            )
            return page(locale, text(locale, "totp_title"), body, status)
        items = "".join(f"<li>{html.escape(text(locale, 'scope_' + s))}</li>" for s in ia.request.scope)
        body = render(
            "consent",
            base=base,
            csrf=csrf,
            scopes=Fragment(items),
            client_logo=_logo(client.logo_uri),
            intro=text(locale, "consent_intro", client=client.name),
            allow=text(locale, "allow"),
            deny=text(locale, "deny"),
        )
        return page(locale, text(locale, "consent_title"), body, status)

    @get("", operation_id="OidcInteraction")
    async def show(self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]) -> Response[Any]:
        try:
            ia = await self._load(oidc, request, iid, None)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        return await self._page(oidc, request, ia)

    @post("/send-code", operation_id="OidcInteractionSendCode", status_code=200)
    async def send_code(
        self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]
    ) -> Response[Any]:
        form = await self._form(request)
        try:
            ia = await self._load(oidc, request, iid, form)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        try:
            await oidc.identity.persons.send_code(
                "login", form.get("mobile", ""), oidc.client_info(request, ia.request.client_id)
            )
        except IdentityError as exc:
            return await self._page(oidc, request, ia, error=str(exc), status=exc.problem_status)
        from identity.persons import validation

        ia.code_sent_to = validation.mobile(form.get("mobile", ""))
        await save_interaction(oidc, ia)
        return await self._page(oidc, request, ia)

    @post("/login", operation_id="OidcInteractionLogin", status_code=303)
    async def login(self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]) -> Response[Any]:
        form = await self._form(request)
        try:
            ia = await self._load(oidc, request, iid, form)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        info = oidc.client_info(request, ia.request.client_id)
        persons = oidc.identity.persons
        try:
            if form.get("method") == "password":
                issued = await persons.login_with_password(
                    form.get("mobile", ""), form.get("password", ""), info
                )
            else:
                issued = await persons.login_with_code(form.get("mobile", ""), form.get("code", ""), info)
        except IdentityError as exc:
            return await self._page(oidc, request, ia, error=str(exc), status=exc.problem_status)
        amr = ("pwd",) if form.get("method") == "password" else ("sms",)
        sign_in = SignIn(
            account_id=issued.account_id,
            loa=issued.loa,
            amr=amr,
            identity_session_id=issued.session_id,
            identity_token=issued.token,
            user_agent=info.user_agent,
            address=info.address,
        )
        previous = await oidc.current_session(request)
        session = None
        if previous is not None and previous.account_id == issued.account_id:
            session = await oidc.sso.reauthenticate(previous, sign_in)
            if session is not None:
                async with oidc.core.pool.acquire() as conn:
                    await oidc.core.sessions.revoke(conn, previous.identity_session_id, "signed in again")
        elif previous is not None:
            await oidc.end_session(previous.sid, "another person signed in here", previous.account_id)
        if session is None:
            session = await oidc.sso.create(sign_in)
        ia.login_sid = session.sid
        await save_interaction(oidc, ia)
        cookie = oidc.cookie_header(
            COOKIE, oidc.sso.cookie_value(session.sid, session.epoch), oidc.settings.sso_session_ttl
        )
        return redirect(f"/oidc/interaction/{ia.iid}", {"Set-Cookie": cookie})

    @post("/totp", operation_id="OidcInteractionTotp", status_code=303)
    async def totp(self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]) -> Response[Any]:
        form = await self._form(request)
        try:
            ia = await self._load(oidc, request, iid, form)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        session = await oidc.current_session(request)
        token = oidc.sso.unseal(session) if session else None
        principal = await oidc.core.sessions.resolve(token) if token else None
        if session is None or token is None or principal is None:
            return await self._page(oidc, request, ia)
        try:
            issued = await oidc.identity.factors.step_up(
                principal, token, form.get("code", ""), oidc.client_info(request, ia.request.client_id)
            )
        except IdentityError as exc:
            return await self._page(oidc, request, ia, error=str(exc), status=exc.problem_status)
        amr = tuple(sorted({*session.amr, "otp"}))
        raised = await oidc.sso.raise_level(session, loa=issued.loa, amr=amr, identity_token=issued.token)
        ia.login_sid = session.sid
        await save_interaction(oidc, ia)
        cookie = oidc.cookie_header(
            COOKIE, oidc.sso.cookie_value(raised.sid, raised.epoch), oidc.settings.sso_session_ttl
        )
        return redirect(f"/oidc/interaction/{ia.iid}", {"Set-Cookie": cookie})

    @post("/consent", operation_id="OidcInteractionConsent", status_code=303)
    async def consent(
        self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]
    ) -> Response[Any]:
        form = await self._form(request)
        try:
            ia = await self._load(oidc, request, iid, form)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        session = await oidc.current_session(request)
        if session is None:
            return await self._page(oidc, request, ia)
        if form.get("decision") != "allow":
            return await self._deny(oidc, ia)
        await oidc.consents.grant(session.account_id, ia.request.client_id, ia.request.scope)
        ia.consented = True
        await save_interaction(oidc, ia)
        await oidc.core.audit(
            "identity.oidc.consent",
            client=oidc.client_info(request, ia.request.client_id),
            actor_kind="person",
            actor_id=session.account_id,
            target_kind="client",
            target_id=ia.request.client_id,
            details={"scopes": list(ia.request.scope)},
        )
        return redirect(f"/oidc/interaction/{ia.iid}")

    @post("/cancel", operation_id="OidcInteractionCancel", status_code=303)
    async def cancel(
        self, request: Req, oidc: NamedDependency[Provider], iid: FromPath[str]
    ) -> Response[Any]:
        form = await self._form(request)
        try:
            ia = await self._load(oidc, request, iid, form)
        except ErrorPage as exc:
            return error_page("zh-CN", exc)
        return await self._deny(oidc, ia)

    async def _deny(self, oidc: Provider, ia: Interaction) -> Response[Any]:
        await oidc.redis.delete(f"oidc:ia:{ia.iid}")
        r = ia.request
        return redirect_error(
            oidc,
            RedirectError(r, r.redirect_uri, r.state, OAuthError("access_denied", "the person declined")),
        )
