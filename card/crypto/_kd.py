"""Card key diversification (分散), card-protocol.md §2.1, with the SM4 form of §1.9.

One level, 3DES (§2.1): ``K = 3DES(MK, D) || 3DES(MK, ~D)`` with an 8-byte factor ``D``.
One level, SM4 (§1.9, the PBOC SM4 UDK form): ``K = SM4(MK, D || ~D)``.

E-purse card keys (DPK purchase, DLK load, DTK TAC) use two factors (§1.3, §2.1):

* card factor   = last 8 bytes of the 10-byte application serial (file 0x15 bytes 12..19);
* issuer factor = first 4 bytes of the issuer ID (file 0x15 bytes 0..3) || ``FF FF FF FF``.

The order of the two levels is **not confirmed** by the reference (§1.8, §10), so the two-level
helper takes it as a required argument and callers must state which one their PSAMs use.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from card.crypto._common import invert, require_length
from card.crypto._des import tdes_ecb_encrypt
from card.crypto._sm4 import sm4_ecb_encrypt

__all__ = [
    "BlockCipher",
    "DiversificationOrder",
    "derive_card_key",
    "derive_epurse_card_key",
    "diversify_key",
    "epurse_card_factor",
    "epurse_issuer_factor",
]


class BlockCipher(Enum):
    """Block cipher of a key family. PBOC signals it with algorithm id 01 = 3DES, 04 = SM4 (§1.9, §3)."""

    TDES = "3DES"
    SM4 = "SM4"


class DiversificationOrder(Enum):
    """Which factor diversifies the master key first in a two-level derivation (§1.8: [uncertain])."""

    ISSUER_FIRST = "issuer-first"  # MK → issuer sub-key (issuer factor) → card key (card factor)
    CARD_FIRST = "card-first"  # MK → (card factor) → (issuer factor)


def diversify_key(master_key: bytes, factor: bytes, *, cipher: BlockCipher = BlockCipher.TDES) -> bytes:
    """One level of diversification; returns a 16-byte key.

    3DES (§2.1): ``3DES(MK, D) || 3DES(MK, ~D)``, ``MK`` a 16-byte two-key 3DES key.
    SM4 (§1.9): ``SM4-ECB(MK, D || ~D)``, ``MK`` a 16-byte SM4 key.
    ``factor`` (``D``) is 8 bytes in both cases. No parity adjustment is applied: the reference gives
    none, and DES ignores the parity bits, so MACs are unaffected either way.
    """
    master_key = require_length(master_key, 16, name="master key")
    factor = require_length(factor, 8, name="diversification factor")
    block = factor + invert(factor)
    if cipher is BlockCipher.TDES:
        return tdes_ecb_encrypt(master_key, block)  # ECB: E(D) || E(~D)
    if cipher is BlockCipher.SM4:
        return sm4_ecb_encrypt(master_key, block)
    raise ValueError(f"unsupported cipher {cipher!r}")


def derive_card_key(
    master_key: bytes, factors: Sequence[bytes], *, cipher: BlockCipher = BlockCipher.TDES
) -> bytes:
    """Apply ``diversify_key`` once per factor, in the order given (first factor first)."""
    if isinstance(factors, bytes | bytearray):
        raise TypeError("factors must be a sequence of 8-byte factors, not a single bytes value")
    if not factors:
        raise ValueError("at least one diversification factor is required")
    key = master_key
    for factor in factors:
        key = diversify_key(key, factor, cipher=cipher)
    return key


def epurse_card_factor(app_serial: bytes) -> bytes:
    """Card factor: last 8 bytes of the 10-byte application serial (file 0x15 bytes 10..19), §1.1, §2.1."""
    return require_length(app_serial, 10, name="application serial")[2:]


def epurse_issuer_factor(issuer_id: bytes) -> bytes:
    """Issuer factor: first 4 bytes of the 8-byte issuer ID (file 0x15 bytes 0..7) || FF×4, §1.1, §1.3."""
    return require_length(issuer_id, 8, name="issuer ID")[:4] + b"\xff" * 4


def derive_epurse_card_key(
    master_key: bytes,
    *,
    app_serial: bytes,
    issuer_id: bytes,
    order: DiversificationOrder,
    cipher: BlockCipher = BlockCipher.TDES,
) -> bytes:
    """A card's DPK / DLK / DTK from the matching issuer master key (MK_DPK / MK_DLK / MK_DTK), §2.1.

    ``app_serial`` is the 10-byte application serial and ``issuer_id`` the 8-byte issuer ID, both
    from file 0x15. ``order`` is required because the reference leaves it open (§1.8, §10).
    """
    card = epurse_card_factor(app_serial)
    issuer = epurse_issuer_factor(issuer_id)
    if order is DiversificationOrder.ISSUER_FIRST:
        factors = (issuer, card)
    elif order is DiversificationOrder.CARD_FIRST:
        factors = (card, issuer)
    else:
        raise TypeError(f"order must be a DiversificationOrder, got {order!r}")
    return derive_card_key(master_key, factors, cipher=cipher)
