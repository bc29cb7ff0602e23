"""Offline ride QR code: payload layout and signing (:mod:`.payload`), verification (:mod:`.verifier`),
text form (:mod:`.text`). See card-protocol.md §5."""

from card.qr.payload import (
    AUTHORISATION_SIZE,
    PAYLOAD_SIZE,
    Authorisation,
    Concession,
    build_qr_payload,
    encode_authorisation,
    parse_authorisation,
    sign_authorisation,
)
from card.qr.text import decode_qr_text, encode_qr_text
from card.qr.verifier import OfflineVerifier, QRRejected, RejectReason, VerifiedRide

__all__ = [
    "AUTHORISATION_SIZE",
    "PAYLOAD_SIZE",
    "Authorisation",
    "Concession",
    "OfflineVerifier",
    "QRRejected",
    "RejectReason",
    "VerifiedRide",
    "build_qr_payload",
    "decode_qr_text",
    "encode_authorisation",
    "encode_qr_text",
    "parse_authorisation",
    "sign_authorisation",
]
