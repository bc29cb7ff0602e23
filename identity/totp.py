"""RFC 6238 TOTP over RFC 4226 HOTP (HMAC-SHA1/256/512, dynamic truncation)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import urllib.parse
from typing import Literal

__all__ = ["hotp", "matching_step", "new_secret", "otpauth_uri", "totp", "totp_step"]

Algorithm = Literal["sha1", "sha256", "sha512"]
PERIOD = 30


def hotp(secret: bytes, counter: int, *, digits: int = 6, algorithm: Algorithm = "sha1") -> str:
    digest = hmac.new(secret, counter.to_bytes(8, "big"), getattr(hashlib, algorithm)).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp_step(unix_time: float, period: int = PERIOD) -> int:
    return int(unix_time // period)


def totp(
    secret: bytes, unix_time: float, *, digits: int = 6, algorithm: Algorithm = "sha1", period: int = PERIOD
) -> str:
    return hotp(secret, totp_step(unix_time, period), digits=digits, algorithm=algorithm)


def matching_step(secret: bytes, code: str, unix_time: float, *, window: int = 1) -> int | None:
    """The time step within ``±window`` steps whose code is ``code`` (constant-time compare), or None."""
    now = totp_step(unix_time)
    found = None
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(secret, step), code):
            found = step
    return found


def new_secret() -> bytes:
    return secrets.token_bytes(20)  # 160 bits, RFC 4226 §4 recommendation


def otpauth_uri(secret: bytes, account_label: str, issuer: str = "Citizen") -> str:
    encoded = base64.b32encode(secret).decode().rstrip("=")
    label = urllib.parse.quote(f"{issuer}:{account_label}")
    query = urllib.parse.urlencode({"secret": encoded, "issuer": issuer, "algorithm": "SHA1", "digits": 6})
    return f"otpauth://totp/{label}?{query}"
