"""The form-posting OAuth endpoints (token, introspection, revocation) as plain ASGI handlers.

These are the provider's hot paths: a resource server introspects on every call it receives and
clients hit the token endpoint for every grant. Litestar's request, dependency and response
machinery was as much CPU as the OAuth work itself, so these handlers read the body and write
the answer directly. What they answer is unchanged: RFC 6749 JSON, ``no-store``, the error JSON
of :class:`OAuthError` (``WWW-Authenticate`` on 401), 405 for any method but POST (and OPTIONS,
the CORS preflight, where the endpoint answers CORS: ``cors.py``). The app's own
middleware (request id, access log, metrics, exception handling) still wraps them. They are not
in the OpenAPI document (discovery describes them, as OAuth intends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from identity.oidc.cors import CorsRoute, client_named
from identity.oidc.errors import OAuthError
from identity.oidc.request import single_params

__all__ = ["PROVIDER_STATE_KEY", "Answer", "FormRequest", "form_endpoint", "read_form"]

PROVIDER_STATE_KEY = "citizen.oidc.provider"
REPEATABLE = ("audience", "resource")
MAX_FORM = 64 * 1024
_FORM_TYPE = "application/x-www-form-urlencoded"
_encode = msgspec.json.Encoder()
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class FormRequest(msgspec.Struct, frozen=True):
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    form: dict[str, str]
    proofs: tuple[str, ...] = ()  # every DPoP header (RFC 9449 §4.3: exactly one is accepted)
    address: str = ""  # the client's network address, for throttling failed client authentication


class Answer(msgspec.Struct, frozen=True):
    body: Any
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    client_id: str | None = None  # the authenticated client, whose origins CORS allows


Handler = Callable[[Any, FormRequest], Awaitable[Answer]]


def read_form(content_type: str, body: bytes) -> dict[str, str]:
    """The parameters of a form body; a repeated or undecodable one is ``invalid_request``."""
    if not content_type.startswith(_FORM_TYPE):
        raise OAuthError("invalid_request", "the body must be " + _FORM_TYPE)
    if len(body) > MAX_FORM:
        raise OAuthError("invalid_request", "the request body is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not a valid form") from None
    # RFC 8693 §2.1 lets audience and resource repeat; they are kept space-separated (neither a
    # URI nor a logical name here holds a space). Any other repeated parameter is an error.
    repeated = [(k, v) for k, v in pairs if k in REPEATABLE]
    form = single_params([(k, v) for k, v in pairs if k not in REPEATABLE])
    for name in REPEATABLE:
        values = [v for k, v in repeated if k == name]
        if any(not v or " " in v for v in values):
            raise OAuthError("invalid_request", f"{name} must be a non-empty value without spaces")
        if values:
            form[name] = " ".join(values)
    return form


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]  # http.request
        size += len(chunk)
        if size > MAX_FORM:  # stop reading; the server discards the rest
            raise OAuthError("invalid_request", "the request body is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _error(exc: OAuthError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [*_NO_STORE, *((k.encode(), v.encode()) for k, v in exc.headers)]
    if exc.status == 401 or exc.www_auth:
        scheme = "Bearer" if exc.www_auth else "Basic"
        value = f'{scheme} realm="citizen", error="{exc.error}"'
        if exc.description:
            value += f', error_description="{exc.description}"'
        headers.append((b"www-authenticate", value.encode()))
    return exc.status, headers, _encode.encode(exc.body())


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]


def form_endpoint(path: str, handler: Handler, cors: CorsRoute | None = None) -> ASGIRouteHandler:
    """A POST-only endpoint at ``path`` calling ``handler(provider, request)``; with ``cors``, it
    answers preflights and puts CORS headers on its answers (``cors.py``)."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        provider = scope["litestar_app"].state[PROVIDER_STATE_KEY]
        method = scope.get("method")
        origin = headers.get("origin") if cors is not None else None
        form: dict[str, str] = {}
        client_id: str | None = None
        extra: list[tuple[bytes, bytes]] = []
        if cors is not None and method == "OPTIONS":
            status, body = 204, b""
            extra = _encoded(await provider.cors.preflight(origin, cors))
        elif method != "POST":
            status, body = 405, _encode.encode({"error": "invalid_request", "error_description": "use POST"})
            extra = [*_NO_STORE, (b"allow", b"POST")]  # a preflight's answer lists OPTIONS too
        else:
            try:
                form = read_form(headers.get("content-type", ""), await _body(receive))
                proofs = tuple(v.decode("latin-1") for k, v in scope["headers"] if k == b"dpop")
                peer = scope.get("client")
                request = FormRequest(headers, form, proofs, str(peer[0]) if peer else "")
                answer = await handler(provider, request)
                status, client_id = answer.status, answer.client_id
                body = answer.body if isinstance(answer.body, bytes) else _encode.encode(answer.body)
                extra = [*_NO_STORE, *((k.encode(), v.encode()) for k, v in answer.headers)]
            except OAuthError as exc:
                status, extra, body = _error(exc)
            if cors is not None and origin is not None:  # errors too: the app must read why
                named = client_id or client_named(headers, form)
                extra += _encoded(await provider.cors.actual(origin, named, cors))
        # RFC 9110 §8.6: no Content-Length (nor a type) on a 204, the preflight's answer.
        content = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*(content if status != 204 else ()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return asgi(path, is_mount=False, copy_scope=False)(endpoint)
