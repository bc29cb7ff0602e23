"""What both areas share: the runtime (in-process API client, relying party, sessions, templates),
rendering with the security headers, the session cookie and the CSRF check."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jinja2
from litestar import Request, Response
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from backend.web.i18n import Lang, choose, text
from backend.web.oidc import RelyingParty
from backend.web.sessions import SessionStore, WebSession, new_session_id
from backend.web.upstream import Api
from identity.oidc.wiring import api_audience_of

__all__ = ["Page", "WebRuntime", "load_web_demo", "local_path", "redirect"]

Req = Request[Any, Any, Any]
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
}
_CHINA = dt.timezone(dt.timedelta(hours=8))


def _yuan(fen: int | None) -> str:
    return "—" if fen is None else f"¥{fen / 100:,.2f}"


def _local(value: Any) -> str:
    if value is None:
        return "—"
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.astimezone(_CHINA).strftime("%Y-%m-%d %H:%M:%S")


class WebRuntime:
    """Made once per app by ``backend.wiring``; its lifespan opens the in-process client."""

    def __init__(self, resources: Any) -> None:
        self._resources = resources
        self._api: Api | None = None
        self._rp: RelyingParty | None = None
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("backend.web", "templates"),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        )
        self.templates.filters["yuan"] = _yuan
        self.templates.filters["local"] = _local
        self.static_dir = Path(__file__).parent / "static"

    @property
    def settings(self) -> Any:
        return self._resources.settings

    @property
    def api(self) -> Api:
        if self._api is None:
            raise RuntimeError("the web pages are not started (outside the app's lifespan)")
        return self._api

    @property
    def rp(self) -> RelyingParty:
        if self._rp is None:
            raise RuntimeError("the web pages are not started (outside the app's lifespan)")
        return self._rp

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self._resources.redis)

    @property
    def pool(self) -> Any:
        return self._resources.pool

    @property
    def redis(self) -> Any:
        return self._resources.redis

    @property
    def secure_cookies(self) -> bool:
        return str(self.settings.public_url).startswith("https://")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        settings = self.settings
        issuer = (settings.oidc.issuer or settings.public_url).rstrip("/")
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
        async with httpx.AsyncClient(transport=transport, base_url=issuer, timeout=30.0) as http:
            self._api = Api(http)
            self._rp = RelyingParty(
                self._api, issuer, Path(settings.data_dir), settings.public_url, api_audience_of(settings)
            )
            try:
                yield
            finally:
                self._api = self._rp = None

    def route_handlers(self) -> list[ControllerRouterHandler]:
        from backend.web.citizen import citizen_router
        from backend.web.console import console_router

        return [citizen_router(), console_router()]

    def dependencies(self) -> dict[str, Provide]:
        return {"web": Provide(lambda: self, use_cache=True, sync_to_thread=False)}


class Page:
    """One request's view of its area: the session, the language, rendering and redirects."""

    def __init__(self, web: WebRuntime, request: Req, cookie: str, path: str) -> None:
        self.web = web
        self.request = request
        self.cookie = cookie
        self.path = path
        self.session: WebSession = web.sessions.new("zh-CN")
        self._dirty = False
        self._is_new = True
        self._retired: list[str] = []  # ids this request moved the session away from

    @classmethod
    async def open(cls, web: WebRuntime, request: Req, cookie: str, path: str) -> Page:
        page = cls(web, request, cookie, path)
        found = await web.sessions.load(request.cookies.get(cookie))
        asked = request.query_params.get("lang")
        if found is None:
            page.session = web.sessions.new(choose(asked, request.headers.get("accept-language")))
            page._dirty = True
        else:
            page.session = found
            page._is_new = False
        if asked and choose(asked) != page.session.lang:
            page.session.lang = choose(asked)
            page._dirty = True
        return page

    @property
    def lang(self) -> Lang:
        return "en" if self.session.lang == "en" else "zh-CN"

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)

    def changed(self) -> None:
        self._dirty = True

    def sign_out(self) -> None:
        """Drops the sign-in and moves the session to a new id. Called before a sign-in stores its
        tokens too: whoever knew the old id (one planted in the browser beforehand: session
        fixation) is left with an id that no longer exists. The language and a flash stay."""
        self.session.forget_sign_in()
        if not self._is_new:
            self._retired.append(self.session.id)
        self.session.id = new_session_id()
        self._dirty = True

    async def form(self) -> dict[str, str]:
        data = await self.request.form()
        return {k: str(v) for k, v in data.items()}

    def csrf_ok(self, form: dict[str, str]) -> bool:
        return not self._is_new and self.session.csrf_ok(form.get("csrf"))

    async def _finish(self, response: Response[Any]) -> Response[Any]:
        await self.web.sessions.save(self.session)
        for old in self._retired:  # after the save: a failed save leaves the old session usable
            await self.web.sessions.retire(old)
        self._retired.clear()
        flags = "; HttpOnly; SameSite=Lax" + ("; Secure" if self.web.secure_cookies else "")
        response.headers["Set-Cookie"] = (
            f"{self.cookie}={self.session.id}; Path={self.path.rstrip('/')}{flags}"
        )
        return response

    async def render(self, template: str, status: int = 200, **context: Any) -> Response[Any]:
        other = "en" if self.lang == "zh-CN" else "zh-CN"
        body = self.web.templates.get_template(template).render(
            t=self.t,
            lang=self.lang,
            other_lang=other,
            csrf=self.session.csrf,
            session=self.session,
            base=self.path.rstrip("/"),
            **context,
        )
        response: Response[Any] = Response(
            body, status_code=status, media_type="text/html; charset=utf-8", headers=dict(_HEADERS)
        )
        return await self._finish(response)

    async def redirect(self, location: str) -> Response[Any]:
        return await self._finish(redirect(location))

    async def json(self, payload: Any, status: int = 200) -> Response[Any]:
        response: Response[Any] = Response(
            payload, status_code=status, media_type="application/json", headers={"Cache-Control": "no-store"}
        )
        if self._dirty:
            return await self._finish(response)
        return response


def redirect(location: str) -> Response[Any]:
    return Response(b"", status_code=303, headers={"Location": location, "Cache-Control": "no-store"})


def local_path(value: str | None, default: str) -> str:
    """``value`` if it is a path on this site in ``default``'s area, else ``default`` (no open redirect)."""
    if not value:
        return default
    parts = urlsplit(value)
    area = default.rstrip("/")
    if parts.scheme or parts.netloc or not value.startswith(area) or "\\" in value or "//" in value:
        return default
    return value


async def load_web_demo(pool: Any, _redis: Any, settings: Any, _keyring: Any) -> list[str]:
    """``citizen demo``: the citizen page's OpenID client (development)."""
    from backend.web.oidc import ensure_web_client

    return await ensure_web_client(pool, settings)
