"""Request types of the card API (``forbid_unknown_fields``, keyword-only)."""

from __future__ import annotations

import msgspec

__all__ = ["DeviceActivationRequest", "DocumentKeys", "QrParameters"]


class DeviceActivationRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # SEC1 P-256 point, compressed (33 bytes) or uncompressed (65), standard base64 on the wire.
    device_public_key: bytes
    label: str | None = msgspec.field(default=None)

    def __post_init__(self) -> None:
        if self.label is not None and len(self.label) > 64:
            raise ValueError("label: at most 64 characters")


class QrParameters(msgspec.Struct, frozen=True, kw_only=True):
    """What an app or a reader needs to build and check ride QR codes offline."""

    issuer_id: int
    qr_validity_seconds: int
    platform_keys: dict[str, bytes]  # key id -> compressed P-256 point (base64)


class DocumentKeys(msgspec.Struct, frozen=True, kw_only=True):
    """The platform's document-signing public keys (``DOC_SIGN``): what a card bureau checks a
    personalisation file's signature with, and a reader a signed blacklist file's
    (docs/card-crypto.md §3.4)."""

    algorithm: str  # "ES256": ECDSA P-256 / SHA-256, raw 64-byte r||s, low S
    document_keys: dict[str, bytes]  # key id (the file's key_id) -> compressed P-256 point (base64)
