"""The pages' HTTP client of the app's own API, and the problem+json errors it answers.

The client talks to the app in-process (``httpx.ASGITransport``): a request takes the same path
through routing, guards, problem handling and audit as one from outside.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

__all__ = ["Api", "ApiError", "field_errors"]


class ApiError(Exception):
    """An answer of 400 or above: its status and the problem document (or the OAuth error)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("error_description") or problem.get("title")
        super().__init__(str(detail or f"HTTP {status}"))

    @property
    def slug(self) -> str:
        kind = str(self.problem.get("type") or self.problem.get("error") or "")
        return kind.rsplit("/", 1)[-1]

    @property
    def unauthenticated(self) -> bool:
        return self.status == 401


def field_errors(error: ApiError) -> dict[str, str]:
    """``{field: message}`` from a validation problem's ``errors`` list."""
    found: dict[str, str] = {}
    for item in error.problem.get("errors") or []:
        if isinstance(item, dict) and item.get("field"):
            found.setdefault(str(item["field"]), str(item.get("message") or ""))
    return found


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        json: Any = None,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        content = msgspec.json.encode(json) if json is not None else None
        if content is not None:
            sent["Content-Type"] = "application/json"
        return await self.http.request(
            method,
            url,
            content=content,
            data=form,
            params=params,
            headers=sent,
            auth=httpx.BasicAuth(*auth) if auth else None,
        )

    async def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; :class:`ApiError` for 400 and above."""
        response = await self.send(method, url, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem(response))
        if not response.content:
            return None
        return msgspec.json.decode(response.content)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return {"detail": f"HTTP {response.status_code}"}
    return decoded if isinstance(decoded, dict) else {"detail": str(decoded)}
