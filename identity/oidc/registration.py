"""What a client may register: the rules for its URIs and the size of its RSA keys."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

from identity.errors import InvalidField

__all__ = ["LOOPBACK", "MIN_RSA_BITS", "check_uri", "rsa_bits"]

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
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
