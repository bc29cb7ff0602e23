"""Credentials shared by the connectors and the simulators, and the signed-request scheme.

Outside production each upstream's credential (OAuth client secret, API key, signing key) is
derived from the keyring's ``simulator`` key, so the simulators and the app agree on them without
any file: ``HMAC-SHA256(simulator key, "citizen-upstream:<name>")``, URL-safe base64.

Signed requests (``X-Citizen-*`` headers) carry an HMAC-SHA256, hex, over the canonical string::

    METHOD \\n PATH?QUERY \\n TIMESTAMP \\n SHA256-HEX(BODY)

with the timestamp in Unix seconds; the upstream refuses a timestamp more than ``MAX_SKEW``
seconds away from its clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = [
    "CLIENT_ID",
    "MAX_SKEW",
    "SIGNATURE_HEADERS",
    "canonical_request",
    "dev_credential",
    "sign",
    "verify_signature",
]

CLIENT_ID = "citizen-app"  # our client id at every upstream that asks for one
MAX_SKEW = 300
SIGNATURE_HEADERS = ("X-Citizen-Client", "X-Citizen-Timestamp", "X-Citizen-Signature")


def dev_credential(simulator_key: bytes, upstream: str) -> str:
    digest = hmac.new(simulator_key, f"citizen-upstream:{upstream}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def canonical_request(method: str, target: str, timestamp: str, body: bytes) -> bytes:
    return "\n".join((method.upper(), target, timestamp, hashlib.sha256(body).hexdigest())).encode()


def sign(key: str, method: str, target: str, timestamp: str, body: bytes) -> str:
    message = canonical_request(method, target, timestamp, body)
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(  # noqa: PLR0917 - the parts of one canonical request
    key: str, method: str, target: str, timestamp: str, body: bytes, signature: str, now: float
) -> bool:
    try:
        skew = abs(now - int(timestamp))
    except ValueError:
        return False
    if skew > MAX_SKEW:
        return False
    return hmac.compare_digest(sign(key, method, target, timestamp, body), signature)
