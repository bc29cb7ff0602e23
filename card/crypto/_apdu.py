"""The e-purse APDUs whose fields feed the MACs: INITIALIZE responses and the command layouts.

Reference: card-protocol.md §1.3 (purchase), §1.6 (load), §1.7 (compound purchase INIT, P1 = 03).
Commands are returned as complete case-4 APDUs ``CLA INS P1 P2 Lc data Le``; status words are the
transport's business and are neither expected nor stripped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from card.crypto._common import encode_amount, encode_uint, require_length

__all__ = [
    "LoadInitResponse",
    "PurchaseInitResponse",
    "PurseType",
    "credit_for_load_command",
    "debit_for_purchase_command",
    "initialize_for_load_command",
    "initialize_for_purchase_command",
    "parse_load_init_response",
    "parse_purchase_init_response",
]


class PurseType(IntEnum):
    """P2 of INITIALIZE: 01 = ED (electronic passbook), 02 = EP (electronic purse) (§1.2, §1.3, §1.5)."""

    ED = 0x01
    EP = 0x02


@dataclass(frozen=True, slots=True, kw_only=True)
class PurchaseInitResponse:
    """INITIALIZE FOR PURCHASE response, 15 bytes (§1.3 step 1)."""

    balance: int
    offline_counter: int
    overdraft_limit: int
    key_version: int
    algorithm_id: int
    pseudo_random: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadInitResponse:
    """INITIALIZE FOR LOAD response, 16 bytes (§1.6)."""

    balance: int
    online_counter: int
    key_version: int
    algorithm_id: int
    pseudo_random: bytes
    mac1: bytes


def parse_purchase_init_response(data: bytes) -> PurchaseInitResponse:
    """``balance(4) | offlineCounter(2) | overdraftLimit(3) | keyVersion(1) | algId(1) | rnd(4)`` (§1.3)."""
    data = require_length(data, 15, name="INITIALIZE FOR PURCHASE response")
    return PurchaseInitResponse(
        balance=int.from_bytes(data[0:4], "big"),
        offline_counter=int.from_bytes(data[4:6], "big"),
        overdraft_limit=int.from_bytes(data[6:9], "big"),
        key_version=data[9],
        algorithm_id=data[10],
        pseudo_random=data[11:15],
    )


def parse_load_init_response(data: bytes) -> LoadInitResponse:
    """``balance(4) | onlineCounter(2) | keyVersion(1) | algId(1) | rnd(4) | MAC1(4)`` (§1.6)."""
    data = require_length(data, 16, name="INITIALIZE FOR LOAD response")
    return LoadInitResponse(
        balance=int.from_bytes(data[0:4], "big"),
        online_counter=int.from_bytes(data[4:6], "big"),
        key_version=data[6],
        algorithm_id=data[7],
        pseudo_random=data[8:12],
        mac1=data[12:16],
    )


def _init_data(key_index: int, amount: int, terminal_no: bytes) -> bytes:
    # §1.3 step 1 / §1.6: keyIdx(1) amount(4) terminalNo(6) = 0x0B bytes
    return (
        encode_uint(key_index, 1, name="key_index")
        + encode_amount(amount)
        + require_length(terminal_no, 6, name="terminal_no")
    )


def initialize_for_purchase_command(
    *,
    key_index: int,
    amount: int,
    terminal_no: bytes,
    compound: bool = False,
    purse: PurseType = PurseType.EP,
) -> bytes:
    """``80 50 01|03 P2 0B | keyIdx(1) amount(4) terminalNo(6) | 0F`` (§1.3 step 1).

    P1 = 01 purchase, 03 compound (CAPP) purchase (§1.3, §1.7).
    """
    header = bytes([0x80, 0x50, 0x03 if compound else 0x01, PurseType(purse), 0x0B])
    return header + _init_data(key_index, amount, terminal_no) + b"\x0f"


def debit_for_purchase_command(*, terminal_txn_serial: int, transaction_time: bytes, mac1: bytes) -> bytes:
    """``80 54 01 00 0F | terminalTxnSerial(4) DT7 MAC1(4) | 08`` (§1.3 step 4).

    The card answers ``TAC(4) || MAC2(4)``.
    """
    return (
        bytes.fromhex("805401000F")
        + encode_uint(terminal_txn_serial, 4, name="terminal_txn_serial")
        + require_length(transaction_time, 7, name="transaction_time (DT7)")
        + require_length(mac1, 4, name="MAC1")
        + b"\x08"
    )


def initialize_for_load_command(
    *, key_index: int, amount: int, terminal_no: bytes, purse: PurseType = PurseType.EP
) -> bytes:
    """``80 50 00 P2 0B | keyIdx(1) amount(4) terminalNo(6) | 10`` (§1.6; the §1.5 vector has P2 = 01)."""
    header = bytes([0x80, 0x50, 0x00, PurseType(purse), 0x0B])
    return header + _init_data(key_index, amount, terminal_no) + b"\x10"


def credit_for_load_command(*, transaction_time: bytes, mac2: bytes) -> bytes:
    """``80 52 00 00 0B | date(4) time(3) MAC2(4) | 04`` (§1.6); the card answers with the TAC."""
    return (
        bytes.fromhex("805200000B")
        + require_length(transaction_time, 7, name="transaction_time (DT7)")
        + require_length(mac2, 4, name="MAC2")
        + b"\x04"
    )
