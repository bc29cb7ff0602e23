"""E-purse load (圈存): process key, MAC1 and MAC2, computed by the backend (card-protocol.md §1.6).

Flow: the card answers INITIALIZE FOR LOAD with ``rnd``, the online counter and MAC1; the host derives
DLK (§2.1) and SESLK, **verifies MAC1 before debiting the funding account**, then returns MAC2 for
CREDIT FOR LOAD. A software card in a mock terminal uses the same functions for its side.

The load TAC layout is **not implemented**: the reference only has an unsourced estimate (§1.6, §10).
"""

from __future__ import annotations

from dataclasses import dataclass

from card.crypto._common import TransactionType, encode_amount, encode_uint, require_length, verify_mac
from card.crypto._des import tdes_ecb_encrypt
from card.crypto._mac import epurse_mac

__all__ = [
    "LoadInputs",
    "load_mac1",
    "load_mac1_input",
    "load_mac2",
    "load_mac2_input",
    "load_session_key",
    "load_session_key_input",
    "verify_load_mac1",
]

_LOAD_KEY_SUFFIX = b"\x80\x00"  # §1.6: fixed 8000 closes the load process-key input


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadInputs:
    """The fields that load MAC1 and MAC2 cover (§1.6).

    ``balance_before`` is the balance from the INITIALIZE FOR LOAD response, ``amount`` the load
    amount (both in fen), ``terminal_no`` the 6-byte terminal number from INITIALIZE FOR LOAD.
    ``txn_type`` is 02 for an EP load; the published vector is an ED load with type 01 (§1.5).
    """

    balance_before: int
    amount: int
    terminal_no: bytes
    txn_type: int = TransactionType.EP_LOAD

    def __post_init__(self) -> None:
        encode_amount(self.balance_before, name="balance_before")
        encode_amount(self.amount)
        require_length(self.terminal_no, 6, name="terminal_no")
        encode_uint(self.txn_type, 1, name="txn_type")


def load_session_key_input(pseudo_random: bytes, online_counter: int) -> bytes:
    """Process-key input, 8 bytes (§1.6): ``rnd(4) || onlineCounter(2) || 80 00``."""
    return (
        require_length(pseudo_random, 4, name="pseudo_random")
        + encode_uint(online_counter, 2, name="online_counter")
        + _LOAD_KEY_SUFFIX
    )


def load_session_key(dlk: bytes, pseudo_random: bytes, online_counter: int) -> bytes:
    """SESLK = 3DES-ECB(DLK, rnd || onlineCounter || 8000), an 8-byte single-DES key (§1.6)."""
    data = load_session_key_input(pseudo_random, online_counter)
    return tdes_ecb_encrypt(require_length(dlk, 16, name="DLK"), data)


def load_mac1_input(inputs: LoadInputs) -> bytes:
    """MAC1 input, 15 bytes (§1.6): ``oldBalance(4) || amount(4) || type(1) || terminalNo(6)``."""
    return (
        encode_amount(inputs.balance_before, name="balance_before")
        + encode_amount(inputs.amount)
        + encode_uint(inputs.txn_type, 1, name="txn_type")
        + inputs.terminal_no
    )


def load_mac1(seslk: bytes, inputs: LoadInputs) -> bytes:
    """MAC1 (card → host), 4 bytes (§1.6)."""
    return epurse_mac(seslk, load_mac1_input(inputs))


def verify_load_mac1(seslk: bytes, inputs: LoadInputs, mac1: bytes) -> bool:
    """Host check of the card's MAC1, in constant time (§1.6; must pass before funds move)."""
    return verify_mac(load_mac1(seslk, inputs), mac1)


def load_mac2_input(inputs: LoadInputs, transaction_time: bytes) -> bytes:
    """MAC2 input, 18 bytes (§1.6): ``amount(4) || type(1) || terminalNo(6) || date(4) || time(3)``.

    ``transaction_time`` is the DT7 (date(4) || time(3)) also sent in CREDIT FOR LOAD.
    """
    return (
        encode_amount(inputs.amount)
        + encode_uint(inputs.txn_type, 1, name="txn_type")
        + inputs.terminal_no
        + require_length(transaction_time, 7, name="transaction_time (DT7)")
    )


def load_mac2(seslk: bytes, inputs: LoadInputs, transaction_time: bytes) -> bytes:
    """MAC2 (host → card), 4 bytes (§1.6)."""
    return epurse_mac(seslk, load_mac2_input(inputs, transaction_time))
