"""OAuth 2.0 errors (RFC 6749 §5.2, RFC 6750 §3, OpenID Connect Core §3.1.2.6).

Token, PAR, introspection and revocation endpoints answer :class:`OAuthError` as the RFC 6749 JSON
body; the authorization endpoint turns it into an error redirect (with ``iss``, RFC 9207) once the
client and its redirect URI are known, and into :class:`ErrorPage` (HTML, never a redirect) before.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

__all__ = ["ErrorPage", "OAuthError", "oauth_error_response"]

_encoder = msgspec.json.Encoder()


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str = "",
        status: int = 400,
        *,
        www_auth: bool | str = False,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        # error_description: printable ASCII without CR/LF/TAB (RFC 6749 §5.2)
        super().__init__(description)
        self.error = error
        self.description = "".join(c for c in description if 0x20 <= ord(c) < 0x7F and c not in '"\\')
        self.status = status
        # True: a Bearer challenge (RFC 6750 §3); a string: that scheme's challenge (e.g. "DPoP").
        self.www_auth = www_auth
        self.headers = headers  # more response headers (a 429's Retry-After)

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class ErrorPage(Exception):
    """An error shown to the person in the browser; the client is unknown or not to be trusted."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def oauth_error_response(_: Request[Any, Any, Any], exc: OAuthError) -> Response[bytes]:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache", **dict(exc.headers)}
    if exc.status == 401 or exc.www_auth:
        scheme = exc.www_auth if isinstance(exc.www_auth, str) else "Bearer" if exc.www_auth else "Basic"
        headers["WWW-Authenticate"] = f'{scheme} realm="citizen", error="{exc.error}"'
        if exc.description:
            headers["WWW-Authenticate"] += f', error_description="{exc.description}"'
    return Response(
        content=_encoder.encode(exc.body()),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )
