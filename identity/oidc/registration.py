"""What a client may register (URIs, web origins, RSA key sizes), and the origins its browser code
runs on.

An origin is compared as browsers serialise it in the ``Origin`` header (RFC 6454 §6.2; the Fetch
standard's "ASCII serialization of an origin"): ``scheme://host``, with ``:port`` only when it is
not the scheme's default, the host in lower case (IPv6 in brackets, an internationalised name in
its ``xn--`` form), no path, not even "/". So a registered origin must be written exactly so, and
the comparison is an exact string match (no wildcards, as for redirect URIs, RFC 9700 §4.1).

A client's allowed origins (``allowed_origins``) are its registered ``web_origins`` if it has
any (Keycloak's "Web origins", Auth0's "Allowed Web Origins", Okta's "Trusted Origins"), else the
origins of its http(s) redirect URIs (what Keycloak's "+" means): a single-page app is usually
served from the origin it is redirected back to. A private-use scheme (``cn.gov.city.app:/cb``,
RFC 8252 §7.1) has no web origin.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from identity.errors import InvalidField

__all__ = [
    "LOOPBACK",
    "MAX_WEB_ORIGINS",
    "MIN_RSA_BITS",
    "allowed_origins",
    "check_uri",
    "check_web_origins",
    "origin_of",
    "rsa_bits",
]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_WEB_ORIGINS = 20
_DEFAULT_PORTS = {"http": 80, "https": 443}
MIN_RSA_BITS = 2048  # the client keys' floor (identity-oidc.md checklist: RSA >= 2048)


def rsa_bits(jwk: dict[str, Any]) -> int:
    """The modulus size of an RSA JWK (RFC 7518 §6.3.1: ``n`` base64url, big-endian); 0 if unreadable."""
    n = jwk.get("n")
    if not isinstance(n, str):
        return 0
    try:
        return int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big").bit_length()
    except ValueError:
        return 0


def check_uri(field: str, uri: str, *, allow_loopback_http: bool, https_only: bool = False) -> None:
    parts = urlsplit(uri)
    loopback = parts.hostname in LOOPBACK
    if parts.scheme not in {"https", "http"} and (https_only or "." not in parts.scheme):
        raise InvalidField(field, "scheme", f"{uri!r}: https (or a private-use scheme for native apps)")
    if parts.scheme == "http" and not (loopback and allow_loopback_http):
        raise InvalidField(field, "https", f"{uri!r}: plain http only for loopback redirects of native apps")
    if parts.fragment or "#" in uri:
        raise InvalidField(field, "fragment", f"{uri!r}: no fragment")
    if "@" in parts.netloc or "*" in uri:
        raise InvalidField(field, "exact", f"{uri!r}: no userinfo and no wildcard")
    if any(seg in {".", ".."} or seg.startswith("..;") for seg in parts.path.split("/")):
        raise InvalidField(field, "dot_segment", f"{uri!r}: no dot-segments")
    if len(uri) > 2000:
        raise InvalidField(field, "length", "at most 2000 characters")


def origin_of(uri: str) -> str | None:
    """The serialised origin of an http(s) URI; None for any other scheme or no host."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    default = _DEFAULT_PORTS.get(scheme)
    host = parts.hostname  # lower-cased, brackets of an IPv6 literal removed
    if default is None or not host:
        return None
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in {None, default} else f"{scheme}://{host}:{port}"


def allowed_origins(web_origins: Sequence[str], redirect_uris: Iterable[str]) -> frozenset[str]:
    """The origins a client's JavaScript may call the token, userinfo and revocation endpoints from."""
    if web_origins:
        return frozenset(web_origins)
    return frozenset(o for o in map(origin_of, redirect_uris) if o is not None)


def check_web_origins(origins: Sequence[str], *, allow_loopback_http: bool) -> None:
    """Each a serialised origin: https, or http on a loopback host (a developer's machine) where
    ``allow_loopback_http`` (public clients, or a development deployment, as for redirect URIs)."""
    if len(origins) > MAX_WEB_ORIGINS:
        raise InvalidField("web_origins", "count", f"at most {MAX_WEB_ORIGINS} origins")
    for origin in origins:
        if "*" in origin or origin == "null":
            raise InvalidField("web_origins", "exact", f"{origin!r}: one origin, no wildcard")
        if not origin.isascii() or len(origin) > 300:
            raise InvalidField(
                "web_origins", "format", f"{origin!r}: at most 300 ASCII characters (xn-- for IDN hosts)"
            )
        canonical = origin_of(origin)
        if canonical is None:
            raise InvalidField("web_origins", "scheme", f"{origin!r}: https://host[:port]")
        if canonical.startswith("http://") and not (
            urlsplit(origin).hostname in LOOPBACK and allow_loopback_http
        ):
            raise InvalidField(
                "web_origins",
                "https",
                f"{origin!r}: plain http only for loopback origins (public clients, or in development)",
            )
        if canonical != origin:
            raise InvalidField(
                "web_origins",
                "origin",
                f"{origin!r}: an origin as browsers send it, {canonical!r}"
                " (no path, no trailing slash, no default port, lower case)",
            )
