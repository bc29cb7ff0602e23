"""Binary layout of the offline ride QR code, and the platform / device signing side.

Modelled on the MoT / T-Union interoperable QR (card-protocol.md §5.1): a platform-issued authorisation
binds the device key to the account, cap and expiry; each QR adds a generation time and the device's
signature over everything before it. Differences from §5.1: ECDSA P-256 / SHA-256 (FIPS 186-5) instead
of SM2, one platform key level instead of root-CA -> issuer certificate, fixed field sizes, no custom data.

Authorisation, ``AUTHORISATION_SIZE`` = 123 bytes (big-endian integers, §0):

====  ====  ================================================================================
 off   len  field
====  ====  ================================================================================
   0     1  format, ``0x01`` (cf. §5.1 field 1)
   1     2  key id: which platform key signed (cf. §5.1 root-CA key index)
   3     4  issuer id (cf. §5.1 field 6, QR-issuer institution code)
   7    10  card number, packed BCD right-padded with ``F`` (cf. §5.1 field 5, ``3104…556F``)
  17     1  concession type (§5.1 field 8 values)
  18     4  single-payment cap, fen (§5.1 field 9; 4 bytes per §0)
  22     4  authorisation expiry, UTC epoch seconds (§5.1 field 11)
  26    33  device public key, compressed SEC1 P-256 point (cf. §5.1 field 10)
  59    64  platform signature r||s over bytes 0..58 (cf. §5.1 field 15)
====  ====  ================================================================================

QR payload, ``PAYLOAD_SIZE`` = 191 bytes: authorisation(123) | generation time, UTC epoch seconds(4)
(§5.1 field 16) | device signature r||s over bytes 0..126 (64) (§5.1 field 17).

Signatures are raw 64-byte r||s with s normalised to the lower half of the group order ("low-S"), so a
valid signature has exactly one encoding; verifiers reject the high-S twin.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from identity.checks import IdentifierError, validate_luhn

__all__ = [
    "AUTHORISATION_SIZE",
    "FORMAT_V1",
    "PAYLOAD_SIZE",
    "Authorisation",
    "Concession",
    "authorisation_id",
    "build_qr_payload",
    "encode_authorisation",
    "parse_authorisation",
    "sign_authorisation",
]

FORMAT_V1: Final = 0x01
_AUTH_TBS: Final = struct.Struct(">BHI10sBII33s")  # authorisation bytes covered by the platform signature
SIGNATURE_SIZE: Final = 64
AUTHORISATION_SIZE: Final = _AUTH_TBS.size + SIGNATURE_SIZE  # 123
_PAYLOAD: Final = struct.Struct(f">{AUTHORISATION_SIZE}sI{SIGNATURE_SIZE}s")
PAYLOAD_SIZE: Final = _PAYLOAD.size  # 191
_U16: Final = 0xFFFF
_U32: Final = 0xFFFF_FFFF
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND: Final = timedelta(seconds=1)
_ECDSA: Final = ec.ECDSA(hashes.SHA256())
# Order n of the P-256 group (FIPS 186-5 / SEC 2 secp256r1).
_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_HALF_N: Final = _N // 2


class Concession(IntEnum):
    """Account type, values as in §5.1 field 8 (00 is not issued)."""

    STANDARD = 0x01
    STUDENT = 0x02
    SENIOR = 0x03
    TEST = 0x04
    MILITARY = 0x05


_CONCESSIONS: Final = frozenset(int(c) for c in Concession)


class MalformedError(ValueError):
    """Bytes that do not follow the layout above."""


@dataclass(frozen=True, slots=True)
class Authorisation:
    format: int
    key_id: int
    issuer_id: int
    card_number: str
    concession: Concession
    cap_fen: int
    expires_at: datetime
    device_public_key: bytes  # 33-byte compressed point
    signature: bytes
    tbs: bytes  # the signed bytes 0..58


# --- small helpers ----------------------------------------------------------------------------------------


def epoch_seconds(moment: datetime) -> int:
    """Whole UTC seconds since 1970 (floor). Naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")
    return (moment - _EPOCH) // _SECOND


def from_epoch(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _u32_epoch(moment: datetime, what: str) -> int:
    seconds = epoch_seconds(moment)
    if not 0 <= seconds <= _U32:
        raise ValueError(f"{what} is outside the 32-bit epoch range")
    return seconds


def _require_p256(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey, what: str) -> None:
    if not isinstance(key.curve, ec.SECP256R1):
        raise TypeError(f"{what} must be a P-256 key")


def compress_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    _require_p256(key, "device public key")
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def sign_raw(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature as 64-byte r||s with low S."""
    _require_p256(private_key, "signing key")
    r, s = decode_dss_signature(private_key.sign(message, _ECDSA))
    if s > _HALF_N:
        s = _N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(public_key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Check a 64-byte low-S r||s signature; any malformation is simply ``False``."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < _N and 0 < s <= _HALF_N):
        return False
    try:
        public_key.verify(encode_dss_signature(r, s), message, _ECDSA)
    except InvalidSignature:
        return False
    return True


# --- platform side ----------------------------------------------------------------------------------------


def encode_authorisation(
    *,
    key_id: int,
    issuer_id: int,
    card_number: str,
    concession: Concession,
    cap_fen: int,
    expires_at: datetime,
    device_public_key: ec.EllipticCurvePublicKey,
) -> bytes:
    """The 59 to-be-signed authorisation bytes (offsets 0..58 above). Raises ``ValueError`` on bad input."""
    for name, value, limit in (
        ("key_id", key_id, _U16),
        ("issuer_id", issuer_id, _U32),
        ("cap_fen", cap_fen, _U32),
    ):
        if type(value) is not int or not 0 <= value <= limit:
            raise ValueError(f"{name} must be an integer within 0..{limit}")
    try:
        digits = validate_luhn(card_number)
    except IdentifierError as exc:
        raise ValueError(f"card_number: {exc.rule}") from None
    if len(digits) > 20:
        raise ValueError("card_number: at most 20 digits fit the 10-byte BCD field")
    return _AUTH_TBS.pack(
        FORMAT_V1,
        key_id,
        issuer_id,
        bytes.fromhex(digits.ljust(20, "F")),
        Concession(concession),
        cap_fen,
        _u32_epoch(expires_at, "expires_at"),
        compress_public_key(device_public_key),
    )


def sign_authorisation(
    platform_private_key: ec.EllipticCurvePrivateKey,
    *,
    key_id: int,
    issuer_id: int,
    card_number: str,
    concession: Concession,
    cap_fen: int,
    expires_at: datetime,
    device_public_key: ec.EllipticCurvePublicKey,
) -> bytes:
    """The complete 123-byte authorisation: the encoded fields plus the platform's signature."""
    tbs = encode_authorisation(
        key_id=key_id,
        issuer_id=issuer_id,
        card_number=card_number,
        concession=concession,
        cap_fen=cap_fen,
        expires_at=expires_at,
        device_public_key=device_public_key,
    )
    return tbs + sign_raw(platform_private_key, tbs)


# --- device side --------------------------------------------------------------------------------------------


def build_qr_payload(
    authorisation_bytes: bytes, device_private_key: ec.EllipticCurvePrivateKey, generated_at: datetime
) -> bytes:
    """The 191-byte QR payload: authorisation | generation time | device signature over both."""
    auth = parse_authorisation(authorisation_bytes)
    if compress_public_key(device_private_key.public_key()) != auth.device_public_key:
        raise ValueError("device key does not match the authorisation")
    signed = bytes(authorisation_bytes) + _u32_epoch(generated_at, "generated_at").to_bytes(4, "big")
    return signed + sign_raw(device_private_key, signed)


def authorisation_id(authorisation_bytes: bytes) -> int:
    """A device authorisation's id on blacklists: the first 63 bits of SHA-256 over its 123 bytes."""
    return int.from_bytes(hashlib.sha256(bytes(authorisation_bytes)).digest()[:8], "big") >> 1


# --- parsing (structure only; the verifier checks signatures) ----------------------------------------------


def parse_authorisation(data: bytes) -> Authorisation:
    """Split an authorisation into fields. Raises :class:`MalformedError`; checks no signature."""
    if len(data) != AUTHORISATION_SIZE:
        raise MalformedError("authorisation length")
    tbs = bytes(data[: _AUTH_TBS.size])
    fmt, key_id, issuer_id, bcd, concession, cap, expires, point = _AUTH_TBS.unpack(tbs)
    if fmt != FORMAT_V1:
        raise MalformedError("unknown format")
    nibbles = bcd.hex()
    digits = nibbles.rstrip("f")
    if not digits.isdigit():  # also rejects an empty number and F before the last digit
        raise MalformedError("card number is not BCD")
    if concession not in _CONCESSIONS:
        raise MalformedError("unknown concession type")
    if point[0] not in (2, 3):
        raise MalformedError("device key is not a compressed point")
    return Authorisation(
        format=fmt,
        key_id=key_id,
        issuer_id=issuer_id,
        card_number=digits,
        concession=Concession(concession),
        cap_fen=cap,
        expires_at=from_epoch(expires),
        device_public_key=point,
        signature=bytes(data[_AUTH_TBS.size :]),
        tbs=tbs,
    )


def split_payload(payload: bytes) -> tuple[bytes, int, bytes]:
    """``(authorisation bytes, generation time in epoch seconds, device signature)``."""
    if len(payload) != PAYLOAD_SIZE:
        raise MalformedError("payload length")
    auth, generated, signature = _PAYLOAD.unpack(payload)
    return auth, generated, signature
