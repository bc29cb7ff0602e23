"""TAC (transaction authentication code): what the backend recomputes on uploaded records.

* Purchase / compound purchase TAC: card-protocol.md §1.8 [firm].
* Terminal-side (SAM) TAC over QR transactions: card-protocol.md §5.4 [code].

TAC algorithm (§1.8): the ED/EP MAC of §1.4 (single-DES CBC-MAC, IV 00×8, pad 80…, leftmost 4 bytes)
under the 8-byte key ``DTK_L XOR DTK_R``, where DTK is the card's 16-byte TAC key.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from card.crypto._common import encode_amount, encode_uint, require_length, xor
from card.crypto._kd import DiversificationOrder, derive_card_key
from card.crypto._mac import epurse_mac
from card.crypto._purchase import PurchaseInputs

__all__ = [
    "QR_TAC_ISSUER_FACTOR",
    "QR_TAC_RECORD_TYPE",
    "QrTacInputs",
    "derive_qr_tac_key",
    "purchase_tac",
    "purchase_tac_input",
    "purchase_tac_under",
    "qr_tac",
    "qr_tac_input",
    "tac_key",
]

# §5.4 step 1: second 8 bytes of ``80 1A 44 01 10``. "2900" looks like Shanghai's city code, so other
# deployments may use a different value; it is therefore a parameter of derive_qr_tac_key.
QR_TAC_ISSUER_FACTOR = bytes.fromhex("02002900FF000000")
QR_TAC_RECORD_TYPE = 0x88  # §5.4 step 2: first byte of the 80 FA data
_AMOUNT_TYPE = struct.Struct(">IB")  # amount(4) || type(1)


def tac_key(dtk: bytes) -> bytes:
    """The 8-byte single-DES TAC key ``DTK_L XOR DTK_R`` (§1.8)."""
    dtk = require_length(dtk, 16, name="DTK")
    return xor(dtk[:8], dtk[8:])


def purchase_tac_input(inputs: PurchaseInputs) -> bytes:
    """Purchase TAC input, 22 bytes (§1.8).

    ``amount(4) || type(1) || terminalNo(6) || terminalTxnSerial(4) || date(4) || time(3)``; the
    type is 06 for a purchase and 09 for a compound purchase (§1.2, §1.7).
    """
    # ``PurchaseInputs`` validated every field when it was built; this runs once per uploaded record.
    return (
        _AMOUNT_TYPE.pack(inputs.amount, inputs.txn_type)
        + inputs.terminal_no
        + inputs.terminal_txn_serial.to_bytes(4, "big")
        + inputs.transaction_time
    )


def purchase_tac(dtk: bytes, inputs: PurchaseInputs) -> bytes:
    """Purchase TAC, 4 bytes, returned by DEBIT FOR PURCHASE and recomputed by the host (§1.3, §1.8)."""
    return epurse_mac(tac_key(dtk), purchase_tac_input(inputs))


def purchase_tac_under(key: bytes, inputs: PurchaseInputs) -> bytes:
    """The purchase TAC under the 8-byte TAC key itself (``tac_key(dtk)``), for a key store that
    keeps that key rather than re-deriving it for every record."""
    return epurse_mac(key, purchase_tac_input(inputs))


@dataclass(frozen=True, slots=True, kw_only=True)
class QrTacInputs:
    """Fields of the SAM TAC over a QR transaction (§5.4 step 2); server fields are 0 when offline.

    Times whose encoding the reference does not give (terminal, server) are raw 4-byte values;
    ``generation_time`` is the QR generation time, UTC epoch seconds (§5.1 field 16), and
    ``validity`` the QR validity in seconds (§5.1 field 12).
    """

    terminal_serial: int
    terminal_node: bytes
    terminal_time: bytes
    qr_medium: int
    account: bytes
    validity: int
    generation_time: int
    sam_no: bytes
    server_serial: int = 0
    server_time: bytes = bytes(4)
    server_amount: int = 0
    record_type: int = QR_TAC_RECORD_TYPE

    def __post_init__(self) -> None:
        qr_tac_input(self)  # validates every field


def qr_tac_input(inputs: QrTacInputs) -> bytes:
    """The 46 data bytes of §5.4 step 2, without the trailing ``80 00``.

    ``type 0x88 | termSerial(4) | termNode(4) | termTime(4) | serverSerial(4) | serverTime(4) |
    serverAmount(4) | QR medium(1) | account(10) | validity(2) | genTime(4) | SAM no.(4)``.
    The terminal sends these 46 bytes followed by ``80 00`` (48 = 0x30 bytes); that is exactly the
    §1.4 padding of 46 bytes, so ``epurse_mac`` over this input reproduces the SAM's computation.
    """
    return (
        encode_uint(inputs.record_type, 1, name="record_type")
        + encode_uint(inputs.terminal_serial, 4, name="terminal_serial")
        + require_length(inputs.terminal_node, 4, name="terminal_node")
        + require_length(inputs.terminal_time, 4, name="terminal_time")
        + encode_uint(inputs.server_serial, 4, name="server_serial")
        + require_length(inputs.server_time, 4, name="server_time")
        + encode_amount(inputs.server_amount, name="server_amount")
        + encode_uint(inputs.qr_medium, 1, name="qr_medium")
        + require_length(inputs.account, 10, name="account")
        + encode_uint(inputs.validity, 2, name="validity")
        + encode_uint(inputs.generation_time, 4, name="generation_time")
        + require_length(inputs.sam_no, 4, name="sam_no")
    )


def derive_qr_tac_key(
    master_key: bytes,
    account: bytes,
    *,
    order: DiversificationOrder,
    issuer_factor: bytes = QR_TAC_ISSUER_FACTOR,
) -> bytes:
    """The 16-byte SAM TAC key for one QR user account (§5.4 step 1), 3DES diversification of §2.1.

    Factors: the last 8 bytes of the 10-byte user account, and ``issuer_factor``. ``order`` is
    required for the same reason as in ``derive_epurse_card_key`` (§1.8, §10).
    """
    card = require_length(account, 10, name="account")[2:]
    issuer = require_length(issuer_factor, 8, name="issuer_factor")
    if order is DiversificationOrder.ISSUER_FIRST:
        return derive_card_key(master_key, (issuer, card))
    if order is DiversificationOrder.CARD_FIRST:
        return derive_card_key(master_key, (card, issuer))
    raise TypeError(f"order must be a DiversificationOrder, got {order!r}")


def qr_tac(dtk: bytes, inputs: QrTacInputs) -> bytes:
    """SAM TAC over a QR transaction, 4 bytes (§5.4 step 3).

    Inferred, not stated by §5.4: the SAM uses TAC key usage 0x44 as in §1.8, so the §1.8 TAC
    algorithm (key ``DTK_L XOR DTK_R``) is applied. Check against a real SAM before relying on it.
    """
    return epurse_mac(tac_key(dtk), qr_tac_input(inputs))
