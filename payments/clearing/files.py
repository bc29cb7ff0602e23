"""The settlement file sent to an operator: CSV with a header, detail lines and a signed trailer.

Layout (one record per line, ``\\n`` line ends, UTF-8, no quoting needed: no field holds a comma)::

    H,CITIZEN-SETTLEMENT,1,<operator>,<business date>,<window from>,<window to>,CNY
    D,<service day>,<terminal>,<taps>,<gross>
    ...
    T,<detail lines>,<taps>,<gross>,<late taps>,<concession taps>,<rebates>,<fees>,<net>,
      <transfer id>,<signature>            (one line)

Amounts are integer fen. ``<signature>`` is ``HMAC-SHA256:<hex>`` under the keyring's
``settlement`` key, over every byte of the file before it (the header, the detail lines and the
trailer up to and including the comma in front of the signature). The content is a function of
the run's stored window and the ledger only (no generation time), so a re-run writes the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import msgspec

__all__ = ["FORMAT", "DetailLine", "FileTotals", "SettlementFileInvalid", "build_file", "verify_file"]

FORMAT = "CITIZEN-SETTLEMENT"
VERSION = "1"
_SIGNATURE_PREFIX = "HMAC-SHA256:"


class SettlementFileInvalid(ValueError):
    pass


class DetailLine(msgspec.Struct, frozen=True):
    service_day: dt.date
    terminal: str  # '' when the posting named no terminal
    taps: int
    gross: int


class FileTotals(msgspec.Struct, frozen=True, kw_only=True):
    operator: str
    business_date: dt.date
    window_from: dt.datetime
    window_to: dt.datetime
    taps: int
    gross: int
    late_taps: int
    concession_taps: int
    rebates: int
    fees: int
    net: int
    transfer_id: str  # '' when no settlement transfer was needed (net 0)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sign(key: bytes, data: bytes) -> str:
    return _SIGNATURE_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest()


def build_file(totals: FileTotals, details: list[DetailLine], key: bytes) -> bytes:
    header = ",".join(
        [
            "H",
            FORMAT,
            VERSION,
            totals.operator,
            totals.business_date.isoformat(),
            _stamp(totals.window_from),
            _stamp(totals.window_to),
            "CNY",
        ]
    )
    lines = [header]
    lines += [
        f"D,{d.service_day.isoformat()},{d.terminal},{d.taps},{d.gross}"
        for d in sorted(details, key=lambda d: (d.service_day, d.terminal))
    ]
    trailer = (
        f"T,{len(details)},{totals.taps},{totals.gross},{totals.late_taps},{totals.concession_taps},"
        f"{totals.rebates},{totals.fees},{totals.net},{totals.transfer_id},"
    )
    body = ("\n".join(lines) + "\n" + trailer).encode()
    return body + _sign(key, body).encode() + b"\n"


def verify_file(data: bytes, key: bytes) -> FileTotals:
    """Check the signature and that the trailer's counts and totals add up; the totals, or raise."""
    if not data.endswith(b"\n"):
        raise SettlementFileInvalid("the file does not end with a line break")
    cut = data.rfind(b",")
    if cut < 0:
        raise SettlementFileInvalid("no trailer")
    signed, signature = data[: cut + 1], data[cut + 1 : -1].decode()
    if not hmac.compare_digest(signature, _sign(key, signed)):
        raise SettlementFileInvalid("the signature does not match")
    lines = data.decode().rstrip("\n").split("\n")
    header, details, trailer = lines[0].split(","), lines[1:-1], lines[-1].split(",")
    if header[:3] != ["H", FORMAT, VERSION] or len(header) != 8 or trailer[0] != "T" or len(trailer) != 11:
        raise SettlementFileInvalid("not a settlement file of this format")
    rows = [d.split(",") for d in details]
    if any(r[0] != "D" or len(r) != 5 for r in rows):
        raise SettlementFileInvalid("a detail line is malformed")
    count, taps, gross = int(trailer[1]), int(trailer[2]), int(trailer[3])
    if count != len(rows) or taps != sum(int(r[3]) for r in rows) or gross != sum(int(r[4]) for r in rows):
        raise SettlementFileInvalid("the trailer's counts do not match the detail lines")
    totals = FileTotals(
        operator=header[3],
        business_date=dt.date.fromisoformat(header[4]),
        window_from=dt.datetime.fromisoformat(header[5]),
        window_to=dt.datetime.fromisoformat(header[6]),
        taps=taps,
        gross=gross,
        late_taps=int(trailer[4]),
        concession_taps=int(trailer[5]),
        rebates=int(trailer[6]),
        fees=int(trailer[7]),
        net=int(trailer[8]),
        transfer_id=trailer[9],
    )
    if totals.net != totals.gross - totals.rebates - totals.fees:
        raise SettlementFileInvalid("net is not gross minus rebates minus fees")
    return totals
