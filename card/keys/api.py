"""The key store's interface: what callers may ask of it. No operation returns a plain secret key.

A :class:`CardKeyStore` is the HSM boundary. Its software implementation
(:class:`card.keys.software.SoftwareKeyStore`) keeps the issuer master keys encrypted in PostgreSQL;
a PKCS#11 implementation can replace it behind the same Protocol (each operation maps to a
derive-then-MAC or derive-then-verify call inside the token).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from card.crypto import LoadInputs, PurchaseInputs, QrTacInputs
from card.qr import Concession

__all__ = [
    "CardKeyRef",
    "CardKeyStore",
    "PersonalisationCard",
    "SignedDocument",
]


@dataclass(frozen=True, slots=True)
class CardKeyRef:
    """Which card keys an operation uses: the master-key version and the card's two factors (§2.1).

    ``app_serial`` is the 10-byte application serial (file 0x15 bytes 10..19), ``issuer_id`` the
    8-byte issuer ID (file 0x15 bytes 0..7). Both are on ``card.cards`` / the card settings; the
    version is ``card.epurses.key_version``. ``card.lifecycle.key_ref_for`` builds one from a card id.
    """

    key_version: int
    app_serial: bytes
    issuer_id: bytes

    def __post_init__(self) -> None:
        if len(self.app_serial) != 10 or len(self.issuer_id) != 8:
            raise ValueError("app_serial is 10 bytes and issuer_id 8 bytes")
        if not 0 < self.key_version <= 0xFFFF:
            raise ValueError("key_version must be 1..65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class PersonalisationCard:
    """What the card bureau writes into file 0x15 and the purse, besides the keys."""

    card_number: str
    key: CardKeyRef
    issued_on: dt.date
    expires_on: dt.date
    concession: Concession
    overdraft_limit: int


class SignedDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A platform-signed file: ``payload`` (JSON bytes), signed with the DOC_SIGN key ``key_id``.

    The signature is ECDSA P-256 / SHA-256, raw 64-byte r||s with low S (``card.qr.payload.verify_raw``).
    """

    payload: bytes
    key_id: int
    signature: bytes


class CardKeyStore(Protocol):
    # --- key management ------------------------------------------------------------------------
    async def current_version(self) -> int:
        """The master-key version new cards are issued under."""
        ...

    async def rotate(self) -> int:
        """Make a new version current (new DPK/DLK/DTK and signing keys); old ones keep verifying."""
        ...

    # --- e-purse (PBOC, card-protocol.md §1.3-§1.8) --------------------------------------------
    async def purchase_tac(self, ref: CardKeyRef, inputs: PurchaseInputs) -> bytes:
        """The card's purchase TAC (for software cards and tests; the host only verifies)."""
        ...

    async def verify_purchase_tac(self, ref: CardKeyRef, inputs: PurchaseInputs, tac: bytes) -> bool:
        """Recompute the TAC of an uploaded purchase with the card's DTK and compare in constant time."""
        ...

    async def verify_purchase_tacs(self, items: list[tuple[CardKeyRef, PurchaseInputs, bytes]]) -> list[bool]:
        """:meth:`verify_purchase_tac` for a batch (one await for a whole upload)."""
        ...

    async def verify_load_mac1(
        self, ref: CardKeyRef, *, pseudo_random: bytes, online_counter: int, inputs: LoadInputs, mac1: bytes
    ) -> bool:
        """Check the card's load MAC1 (§1.6) before any money moves."""
        ...

    async def load_mac2(
        self,
        ref: CardKeyRef,
        *,
        pseudo_random: bytes,
        online_counter: int,
        inputs: LoadInputs,
        mac1: bytes,
        transaction_time: bytes,
    ) -> bytes:
        """MAC2 for CREDIT FOR LOAD; re-checks MAC1 and raises ``KeyStoreError`` if it is wrong."""
        ...

    async def verify_qr_tac(self, key_version: int, account: bytes, inputs: QrTacInputs, tac: bytes) -> bool:
        """The terminal SAM's TAC over a QR ride (§5.4), keyed from MK_DTK and the 10-byte account."""
        ...

    # --- platform signatures (offline QR §5, blacklists §6.1, personalisation files) -------------
    async def sign_qr_authorisation(
        self,
        *,
        issuer_id: int,
        card_number: str,
        concession: Concession,
        cap_fen: int,
        expires_at: dt.datetime,
        device_public_key: ec.EllipticCurvePublicKey,
    ) -> bytes:
        """A 123-byte ``card.qr`` authorisation signed by the current QR key (key id = version)."""
        ...

    async def qr_public_keys(self) -> dict[int, ec.EllipticCurvePublicKey]:
        """Every QR platform public key by key id, for terminals' parameter download."""
        ...

    async def sign_document(self, payload: bytes) -> SignedDocument:
        """Sign a file (blacklist delta, personalisation record) with the current DOC_SIGN key."""
        ...

    async def document_public_keys(self) -> dict[int, ec.EllipticCurvePublicKey]: ...

    # --- personalisation ---------------------------------------------------------------------------
    async def export_personalisation(
        self, card: PersonalisationCard, transport_key: ec.EllipticCurvePublicKey
    ) -> SignedDocument:
        """The card's DPK/DLK/DTK encrypted to the bureau's transport key, in a signed record."""
        ...
