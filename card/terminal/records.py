"""Helpers both ends use to build and check offline records (docs/terminal-protocol.md §5).

Pure functions over ``card.crypto`` layouts: the DT7 clock, the QR account field, and the data the
reader's QR record MAC covers (the 46 bytes of card-protocol.md §5.4 step 2).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Final

from card.crypto import PurchaseInputs, QrTacInputs, encode_dt7, qr_tac_input
from card.terminal.messages import OfflineRecord
from card.terminal.spec import RecordKind

__all__ = [
    "BEIJING",
    "QR_MEDIUM",
    "dt7",
    "parse_dt7",
    "purchase_inputs",
    "qr_account",
    "qr_mac_input",
]

BEIJING: Final = dt.timezone(dt.timedelta(hours=8), "CST")  # cards and PSAMs keep Beijing time (§0)
QR_MEDIUM: Final = 0x01  # §5.4 step 2 "QR medium": 01 = phone screen


def dt7(moment: dt.datetime) -> bytes:
    """DT7 of an aware datetime, in Beijing wall-clock time."""
    return encode_dt7(moment.astimezone(BEIJING))


@lru_cache(maxsize=8192)
def parse_dt7(raw: bytes) -> dt.datetime:
    """An aware datetime from a DT7; ``ValueError`` when the BCD or the date is invalid.

    Cached: the host parses the time of every uploaded record, and a busy line's records share
    their seconds (datetimes are immutable; a refused value raises and is not cached)."""
    digits = raw.hex()
    if len(raw) != 7 or not digits.isdigit():
        raise ValueError("DT7 is not 7 BCD bytes")
    return dt.datetime(
        int(digits[0:4]),
        int(digits[4:6]),
        int(digits[6:8]),
        int(digits[8:10]),
        int(digits[10:12]),
        int(digits[12:14]),
        tzinfo=BEIJING,
    )


def qr_account(card_number: str) -> bytes:
    """The 10-byte account field: the card number in BCD, right-padded with ``F`` (§5.1 field 5)."""
    if not card_number.isdigit() or len(card_number) > 20:
        raise ValueError("card number: up to 20 digits")
    return bytes.fromhex(card_number.ljust(20, "F"))


def purchase_inputs(record: OfflineRecord) -> PurchaseInputs:
    """The TAC inputs (card-protocol.md §1.8) of a purchase, compound or torn-proof record."""
    assert (
        record.kind != RecordKind.QR and record.psam_terminal_no is not None and record.txn_type is not None
    )
    return PurchaseInputs(
        amount=record.amount,
        terminal_no=record.psam_terminal_no,
        terminal_txn_serial=record.terminal_serial,
        transaction_time=record.txn_time,
        txn_type=record.txn_type,
    )


def qr_mac_input(record: OfflineRecord, *, validity: int, generation_time: int) -> bytes:
    """The §5.4 data of a QR tap; the reader MACs it with its record key (``record_mac``)."""
    assert record.terminal_node is not None and record.sam_no is not None and record.qr_time is not None
    return qr_tac_input(
        QrTacInputs(
            terminal_serial=record.terminal_serial,
            terminal_node=record.terminal_node,
            terminal_time=record.qr_time.to_bytes(4, "big"),
            qr_medium=QR_MEDIUM,
            account=record.app_serial,
            validity=validity,
            generation_time=generation_time,
            sam_no=record.sam_no,
            server_amount=record.amount,
        )
    )
