"""A batch's transfer rows as PostgreSQL binary COPY data, encoded before the ledger lock is taken.

Large batches take turns under the writer lock, so every microsecond spent in Python while a
batch holds it is lost for all of them. The rows of a batch of plain transfers (no flags, no
pending id, no timeout) are known before the batch is evaluated: if every transfer then passes,
the rows are exactly the transfers, in order, stamped with the transaction's time. ``encode``
builds that COPY data while the batch is still waiting for its turn; the store sends it as is
when every result is ``ok`` and falls back to encoding the rows it got otherwise.

Format: PostgreSQL's binary COPY (the "COPY" page of its documentation): a signature, flags and
header extension (zero), then per row the field count and each field as length + big-endian
value (-1 for NULL), then -1 as the trailer. The column order is ``TransferRow``'s.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import AsyncIterator, Sequence

from payments.ledger.snapshot import TRANSFER_COLUMNS
from payments.ledger.types import Transfer

__all__ = ["COLUMNS", "encode", "source"]

COLUMNS = TRANSFER_COLUMNS

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_POSTGRES_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_NULL = b"\xff\xff\xff\xff"
# id, debit and credit account (uuid), amount (bigint), pending_id NULL, ledger (int), code and
# flags (smallint), timeout (int): one struct for the fields every plain transfer has.
_HEAD = struct.Struct(">hi16si16si16siqiiiihihii")
_UUID = struct.Struct(">i16s")
_INT8 = struct.Struct(">iq")
_INT4 = struct.Struct(">ii")
_BARE_TAIL = _NULL * 4  # user_data_128, user_data_64, user_data_32, reference: all NULL


def encode(transfers: Sequence[Transfer], now: dt.datetime) -> bytes | None:
    """The rows of ``transfers`` if each is plain and passes, at ``now``; None when a transfer is
    not plain or a value does not fit its column (the store's usual path then deals with it)."""
    stamp = _INT8.pack(8, (now - _POSTGRES_EPOCH) // _MICROSECOND)
    head = _HEAD.pack
    parts = [_HEADER]
    append = parts.append
    try:
        for t in transfers:
            debit, credit, amount = t.debit_account_id, t.credit_account_id, t.amount
            if t.flags or t.timeout or t.pending_id is not None or debit is None or credit is None:
                return None
            if amount is None:
                return None
            ids = (16, t.id.bytes, 16, debit.bytes, 16, credit.bytes)
            append(head(14, *ids, 8, amount, -1, 4, t.ledger, 2, t.code, 2, 0, 4, 0))
            bare = t.user_data_128 is None and t.user_data_64 is None and t.user_data_32 is None
            append(_BARE_TAIL if bare and t.reference is None else _user_data(t))
            append(stamp)
    except struct.error:
        return None
    append(_TRAILER)
    return b"".join(parts)


def _user_data(t: Transfer) -> bytes:
    u128 = _NULL if t.user_data_128 is None else _UUID.pack(16, t.user_data_128.bytes)
    u64 = _NULL if t.user_data_64 is None else _INT8.pack(8, t.user_data_64)
    u32 = _NULL if t.user_data_32 is None else _INT4.pack(4, t.user_data_32)
    if t.reference is None:
        return u128 + u64 + u32 + _NULL
    text = t.reference.encode()
    return u128 + u64 + u32 + len(text).to_bytes(4, "big") + text


async def source(data: bytes) -> AsyncIterator[bytes]:
    """``data`` for ``copy_to_table``: an async iterable is sent as is (a file would be read in
    a thread, chunk by chunk)."""
    yield data
