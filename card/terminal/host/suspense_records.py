"""A suspense entry with its stored record, as the resolution (``suspense``) reads and locks it.

The record is decoded from its TLV as the terminal sent it (``terminal_records.record``, the bytes
of its ``E3`` item), never from the columns: the columns are the host's copy for queries, and an
accept checks that they still say what the TLV says (``StoredRecord.agrees``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from card._db import Connection
from card.terminal.host.batch_commit import Work
from card.terminal.messages import OfflineRecord, ProtocolError
from card.terminal.messages.fields import decode_body
from card.terminal.spec import Tag
from card.terminal.tlv import TLVError, decode_one

__all__ = ["StoredRecord", "decode_record", "stored_record"]

_SQL: Final = (
    "SELECT s.terminal_id, s.terminal_serial, s.state, s.decision, s.reason, r.status, r.record, r.kind, "
    "r.app_serial, r.card_counter, r.txn_type, r.amount, r.balance_before, r.txn_time, r.tac, r.line, "
    "r.stop, r.entry_stop, t.operator, t.psam_terminal_no FROM card.terminal_suspense s "
    "JOIN card.terminal_records r USING (terminal_id, terminal_serial) "
    "JOIN card.terminals t ON t.id = s.terminal_id WHERE s.terminal_id = $1 AND s.terminal_serial = $2"
)


def decode_record(raw: bytes) -> OfflineRecord | None:
    """The record of a stored ``E3`` item; None when the bytes are not one."""
    try:
        item = decode_one(raw)
        if item.tag != Tag.ITEM or not isinstance(item.value, tuple):
            return None
        return decode_body(OfflineRecord, item.value)
    except (TLVError, ProtocolError):
        return None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    terminal_id: str
    serial: int
    state: str  # the entry's: open or resolved
    decision: str | None
    reason: int
    status: str  # the record's: suspended or accepted
    raw: bytes
    record: OfflineRecord | None  # None: the stored bytes do not decode
    amount: int
    operator: str  # the terminal's: the fare is paid to it
    psam_terminal_no: bytes
    columns: tuple[object, ...]  # kind, serial, app serial, counter, type, amount, balance, time, TAC, …

    def agrees(self, work: Work) -> bool:
        """Whether the columns say what the decoded record says (``work``: it, checked)."""
        r = work.record
        return self.columns == (
            r.kind, r.terminal_serial, r.app_serial, work.counter, work.txn_type, r.amount,
            r.balance_before, work.txn_time, r.tac, r.line, r.stop, r.entry_stop,
        )  # fmt: skip


async def stored_record(
    db: Connection, terminal_id: str, serial: int, *, lock: bool = False
) -> StoredRecord | None:
    """The entry and its record (``lock``: both ``FOR UPDATE``, for the resolving transaction)."""
    row = await db.fetchrow(_SQL + (" FOR UPDATE OF s, r" if lock else ""), terminal_id, serial)
    if row is None:
        return None
    raw = bytes(row["record"])
    time: dt.datetime = row["txn_time"]
    return StoredRecord(
        terminal_id=row["terminal_id"],
        serial=int(row["terminal_serial"]),
        state=row["state"],
        decision=row["decision"],
        reason=int(row["reason"]),
        status=row["status"],
        raw=raw,
        record=decode_record(raw),
        amount=int(row["amount"]),
        operator=row["operator"],
        psam_terminal_no=bytes(row["psam_terminal_no"]),
        columns=(
            int(row["kind"]),
            int(row["terminal_serial"]),
            bytes(row["app_serial"]),
            int(row["card_counter"]),
            int(row["txn_type"]),
            int(row["amount"]),
            row["balance_before"],
            time,
            bytes(row["tac"]),
            row["line"],
            row["stop"],
            row["entry_stop"],
        ),
    )
