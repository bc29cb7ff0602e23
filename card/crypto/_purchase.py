"""E-purse purchase (消费) and compound purchase (复合消费): process key, MAC1, MAC2.

Reference: card-protocol.md §1.3 (flow and layouts), §1.4 (MAC algorithm), §1.5 (vectors), §1.7
(compound purchase: the same computations with transaction type 09). The PSAM (or a software PSAM in
a mock terminal) computes MAC1 and checks MAC2; the card (or a software card) does the reverse. Both
sides build their inputs with the functions below.
"""

from __future__ import annotations

from dataclasses import dataclass

from card.crypto._common import TransactionType, encode_amount, encode_uint, require_length
from card.crypto._des import tdes_ecb_encrypt
from card.crypto._mac import epurse_mac

__all__ = [
    "PurchaseInputs",
    "purchase_mac1",
    "purchase_mac1_input",
    "purchase_mac2",
    "purchase_mac2_input",
    "purchase_session_key",
    "purchase_session_key_input",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseInputs:
    """The transaction fields that MAC1 and the purchase TAC cover (§1.3, §1.8).

    ``amount`` in fen; ``terminal_no`` the 6-byte PSAM terminal number placed in INITIALIZE FOR
    PURCHASE; ``terminal_txn_serial`` the PSAM's 4-byte transaction serial; ``transaction_time`` the
    7-byte BCD DT7 sent in DEBIT FOR PURCHASE (see ``encode_dt7``); ``txn_type`` 06 for a purchase,
    09 for a compound (CAPP) purchase (§1.2, §1.7).
    """

    amount: int
    terminal_no: bytes
    terminal_txn_serial: int
    transaction_time: bytes
    txn_type: int = TransactionType.EP_PURCHASE

    def __post_init__(self) -> None:
        encode_amount(self.amount)
        require_length(self.terminal_no, 6, name="terminal_no")
        encode_uint(self.terminal_txn_serial, 4, name="terminal_txn_serial")
        require_length(self.transaction_time, 7, name="transaction_time (DT7)")
        encode_uint(self.txn_type, 1, name="txn_type")


def purchase_session_key_input(pseudo_random: bytes, offline_counter: int, terminal_txn_serial: int) -> bytes:
    """Process-key input, 8 bytes (§1.3 step 2).

    ``rnd(4) || offlineCounter(2) || last 2 bytes of the terminal txn serial``; ``pseudo_random`` and
    ``offline_counter`` come from the INITIALIZE FOR PURCHASE response (counter before the debit).
    """
    return (
        require_length(pseudo_random, 4, name="pseudo_random")
        + encode_uint(offline_counter, 2, name="offline_counter")
        + encode_uint(terminal_txn_serial, 4, name="terminal_txn_serial")[2:]
    )


def purchase_session_key(
    dpk: bytes, pseudo_random: bytes, offline_counter: int, terminal_txn_serial: int
) -> bytes:
    """SESPK = 3DES-ECB(DPK, process-key input), an 8-byte single-DES key (§1.3 step 2)."""
    data = purchase_session_key_input(pseudo_random, offline_counter, terminal_txn_serial)
    return tdes_ecb_encrypt(require_length(dpk, 16, name="DPK"), data)


def purchase_mac1_input(inputs: PurchaseInputs) -> bytes:
    """MAC1 input, 18 bytes (§1.3 step 3): ``amount(4) || type(1) || terminalNo(6) || DT7``.

    DT7 is ``date(4) || time(3)``.
    """
    return (
        encode_amount(inputs.amount)
        + encode_uint(inputs.txn_type, 1, name="txn_type")
        + inputs.terminal_no
        + inputs.transaction_time
    )


def purchase_mac1(sespk: bytes, inputs: PurchaseInputs) -> bytes:
    """MAC1 (PSAM → card), 4 bytes: ``epurse_mac(SESPK, purchase_mac1_input(...))`` (§1.3 step 3)."""
    return epurse_mac(sespk, purchase_mac1_input(inputs))


def purchase_mac2_input(amount: int) -> bytes:
    """MAC2 input, 4 bytes (§1.3 step 5): ``amount(4)``."""
    return encode_amount(amount)


def purchase_mac2(sespk: bytes, amount: int) -> bytes:
    """MAC2 (card → PSAM), 4 bytes: ``epurse_mac(SESPK, amount(4))`` (§1.3 step 5)."""
    return epurse_mac(sespk, purchase_mac2_input(amount))
