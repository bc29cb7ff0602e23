"""Personalisation records for the card bureau (or a phone's NFC wallet): format, sealing, opening.

The record is JSON (``PersonalisationRecord``) inside a platform-signed :class:`SignedDocument`.
The card's three diversified keys, ``DPK || DLK || DTK`` (48 bytes), are sealed to the bureau's
transport key with ECDH-ES on P-256: an ephemeral key pair, HKDF-SHA256 over the shared secret
(info ``citizen-card-perso/1``, salt = the ephemeral public key), AES-256-GCM with the record's
card number as associated data. The platform never holds the bureau's private key, and the record
says which transport key it is for (``recipient_kid`` = SHA-256 of its compressed point).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card.keys.api import SignedDocument
from card.qr.payload import verify_raw

__all__ = [
    "FORMAT",
    "OpenedPersonalisation",
    "PersonalisationRecord",
    "open_personalisation",
    "recipient_kid",
    "seal_card_keys",
    "verify_document",
]

FORMAT = "citizen-card-perso/1"
_INFO = FORMAT.encode()


class PersonalisationRecord(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    card_number: str
    app_serial: str  # hex, 10 bytes
    issuer_id: str  # hex, 8 bytes
    issued_on: dt.date
    expires_on: dt.date
    key_version: int
    cipher: str  # "3DES" (the SM4 form of card.crypto is ready; not issued yet)
    diversification_order: str  # card.crypto.DiversificationOrder value
    concession: int
    overdraft_limit: int
    key_check_values: dict[str, str]  # DPK/DLK/DTK -> first 3 bytes of 3DES(K, 00x8), hex
    recipient_kid: str
    ephemeral_public_key: bytes  # 33-byte compressed P-256 point
    nonce: bytes
    encrypted_keys: bytes
    created_at: dt.datetime


class OpenedPersonalisation(msgspec.Struct, frozen=True, kw_only=True):
    record: PersonalisationRecord
    dpk: bytes
    dlk: bytes
    dtk: bytes


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def recipient_kid(transport_key: ec.EllipticCurvePublicKey) -> str:
    return hashlib.sha256(_point(transport_key)).hexdigest()


def _kek(shared: bytes, ephemeral_point: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_point, info=_INFO).derive(shared)


def seal_card_keys(
    transport_key: ec.EllipticCurvePublicKey, card_number: str, keys: bytes
) -> tuple[bytes, bytes, bytes]:
    """``(ephemeral point, nonce, ciphertext)`` of ``keys`` for the holder of ``transport_key``."""
    if not isinstance(transport_key.curve, ec.SECP256R1):
        raise TypeError("the transport key must be a P-256 public key")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    point = _point(ephemeral.public_key())
    kek = _kek(ephemeral.exchange(ec.ECDH(), transport_key), point)
    nonce = os.urandom(12)
    return point, nonce, AESGCM(kek).encrypt(nonce, keys, card_number.encode())


def verify_document(document: SignedDocument, public_keys: dict[int, ec.EllipticCurvePublicKey]) -> bool:
    key = public_keys.get(document.key_id)
    return key is not None and verify_raw(key, document.signature, document.payload)


def open_personalisation(
    document: SignedDocument | bytes,
    transport_private_key: ec.EllipticCurvePrivateKey,
    platform_document_keys: dict[int, ec.EllipticCurvePublicKey],
) -> OpenedPersonalisation:
    """The bureau's (or ``mock_terminals``' software card's) side: verify, then decrypt the keys.

    ``document`` is the :class:`SignedDocument` or its JSON encoding as exported. Raises ``ValueError``
    when the signature, the recipient or the ciphertext does not check out.
    """
    if isinstance(document, bytes):
        document = msgspec.json.decode(document, type=SignedDocument)
    if not verify_document(document, platform_document_keys):
        raise ValueError("personalisation record: bad platform signature")
    record = msgspec.json.decode(document.payload, type=PersonalisationRecord)
    if record.format != FORMAT:
        raise ValueError("personalisation record: unknown format")
    if record.recipient_kid != recipient_kid(transport_private_key.public_key()):
        raise ValueError("personalisation record: sealed for another transport key")
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), record.ephemeral_public_key)
    kek = _kek(transport_private_key.exchange(ec.ECDH(), ephemeral), record.ephemeral_public_key)
    try:
        keys = AESGCM(kek).decrypt(record.nonce, record.encrypted_keys, record.card_number.encode())
    except Exception as exc:
        raise ValueError("personalisation record: the keys do not decrypt") from exc
    return OpenedPersonalisation(record=record, dpk=keys[:16], dlk=keys[16:32], dtk=keys[32:48])
