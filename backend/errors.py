"""One error format: RFC 9457 ``application/problem+json`` for every error response.

Domain packages do not import this module (dependencies point from ``backend`` to the domains).
They raise their own exceptions, which follow a small duck-typed contract, the
``ProblemException`` protocol below: class attributes ``problem_type`` (a stable slug, rendered
as ``/problems/<slug>``), ``problem_title`` and ``problem_status``; the instance's ``str()`` is
the ``detail``; an optional ``problem_extra`` mapping adds extension members (RFC 9457 §3.2).
Everything else that escapes a handler is a 500 whose body carries only the request id: no
stack trace, SQL text or internal message reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)

from backend.db import is_database_unavailable
from backend.observability import current_request_id

__all__ = ["PROBLEM_TYPES", "ProblemException", "exception_handlers", "problem_response"]

log = logging.getLogger("citizen.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"

# The stable types the shell itself produces; domains add their own.
PROBLEM_TYPES: dict[str, str] = {
    "validation-error": "The request is not valid",
    "bad-request": "The request is malformed",
    "unauthorized": "Authentication is required",
    "forbidden": "Not allowed",
    "not-found": "No such resource",
    "method-not-allowed": "Method not allowed",
    "conflict": "Conflict with the current state",
    "too-many-requests": "Too many requests",
    "service-unavailable": "A backing service is unavailable",
    "internal-error": "Internal error",
}


@runtime_checkable
class ProblemException(Protocol):
    problem_type: str
    problem_title: str
    problem_status: int


_encoder = msgspec.json.Encoder()


def problem_response(
    status: int,
    slug: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title or PROBLEM_TYPES.get(slug, slug.replace("-", " ").capitalize()),
        "status": status,
    }
    if detail:
        body["detail"] = detail
    request_id = current_request_id()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return Response(
        content=_encoder.encode(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _field_name(key: str | None) -> str | None:
    # msgspec reports "$.holder.id_number"; clients want "holder.id_number".
    if not key:
        return key
    return key[2:] if key.startswith("$.") else key


def _validation(exc: ValidationException) -> Response[bytes]:
    errors = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            errors.append(
                {
                    "field": _field_name(item.get("key")),
                    "source": item.get("source"),
                    "message": str(item.get("message", "")),
                }
            )
    detail = exc.detail or "The request is not valid"
    if detail.startswith("Validation failed for "):
        detail = "The request is not valid"
    return problem_response(422, "validation-error", detail, extra={"errors": errors})


def _handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if isinstance(exc, ProblemException):
        extra = getattr(exc, "problem_extra", None)
        headers = getattr(exc, "problem_headers", None)
        return problem_response(
            exc.problem_status,
            exc.problem_type,
            str(exc) or None,
            title=exc.problem_title,
            extra=extra,
            headers=headers,
        )
    if isinstance(exc, ValidationException):
        return _validation(exc)
    if isinstance(exc, NotFoundException):
        return problem_response(404, "not-found", "No resource at this address")
    if isinstance(exc, MethodNotAllowedException):
        return problem_response(405, "method-not-allowed", headers=exc.headers)
    if isinstance(exc, NotAuthorizedException):
        return problem_response(401, "unauthorized", exc.detail, headers=exc.headers)
    if isinstance(exc, PermissionDeniedException):
        return problem_response(403, "forbidden", exc.detail)
    if isinstance(exc, HTTPException):
        if exc.status_code >= 500:
            log.error("http exception %s", exc.status_code, exc_info=exc)
            return problem_response(exc.status_code, "internal-error")
        slug = {400: "bad-request", 409: "conflict", 429: "too-many-requests"}.get(
            exc.status_code, "bad-request"
        )
        detail = exc.detail if exc.status_code != 400 else _safe_bad_request(exc.detail)
        return problem_response(exc.status_code, slug, detail, headers=exc.headers)
    if is_database_unavailable(exc) or isinstance(
        exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError
    ):
        which = "redis" if isinstance(exc, redis.exceptions.RedisError) else "database"
        log.warning("backing service unavailable", extra={"service": which, "error": exc.__class__.__name__})
        return problem_response(
            503,
            "service-unavailable",
            f"The {which} is unavailable; try again shortly",
            headers={"Retry-After": "2"},
        )
    log.error("unhandled exception", exc_info=exc)
    return problem_response(500, "internal-error", "An internal error occurred; quote the request id")


def _safe_bad_request(detail: str) -> str:
    # Litestar's 400 details are its own fixed phrases (e.g. "Missing required header"), safe to show.
    return detail if len(detail) < 200 else "The request is malformed"


exception_handlers: dict[type[Exception] | int, Any] = {Exception: _handle, HTTPException: _handle}
