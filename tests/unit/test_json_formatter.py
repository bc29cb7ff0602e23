"""backend.observability.JsonFormatter writes with msgspec what json.dumps wrote: the same fields
and values, line for line (only the spacing differs)."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import logging
import sys
import uuid
from typing import Any

import pytest

from backend.observability import _RECORD_KEYS, JsonFormatter, _request_id


def _reference(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    """The formatter as it was (json.dumps)."""
    entry: dict[str, Any] = {
        "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    request_id = _request_id.get()
    if request_id:
        entry["request_id"] = request_id
    for key, value in record.__dict__.items():
        if key not in _RECORD_KEYS and not key.startswith("_"):
            entry[key] = value
    if record.exc_info:
        entry["exception"] = formatter.formatException(record.exc_info)
    return json.dumps(entry, default=str, ensure_ascii=False)


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


class Mode(str, enum.Enum):  # noqa: UP042 - the older kind, whose str() is not its value
    FAST = "fast"


EXTRAS: list[dict[str, Any]] = [
    {},
    {"status": 200, "duration_ms": 4.12, "route": "/api/v1/home"},
    {"ok": True, "none": None, "text": '市民卡 "quoted" \n line'},
    {"id": uuid.UUID(int=7), "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
    {"amount": decimal.Decimal("12.50"), "colour": Colour.RED, "size": Size.LARGE, "mode": Mode.FAST},
    {"error": ValueError("bad"), "blob": b"\x00\x01", "kind": int},
    {"items": [1, "a", uuid.UUID(int=1)], "pair": (1, 2), "mapping": {"a": [1.5]}},
    {"nan": float("nan"), "inf": float("inf")},
    {"big": 2**70, "small": -1, "float": 1e-7},
]
CREATED = [
    1_700_000_000.0,
    1_700_000_000.0004,
    1_700_000_000.9995,
    1_700_000_000.9999996,
    1_799_999_999.123456,
]


@pytest.mark.parametrize("extra", EXTRAS)
@pytest.mark.parametrize("created", CREATED)
def test_same_fields_as_json_dumps(extra: dict[str, Any], created: float) -> None:
    formatter = JsonFormatter()
    record = logging.getLogger("citizen.test").makeRecord(
        "citizen.test", logging.INFO, __file__, 1, "%s %s", ("GET", "/x"), None, extra=extra
    )
    record.created = created
    token = _request_id.set("0123456789abcdef")
    try:
        assert json.loads(formatter.format(record)) == json.loads(_reference(record, formatter))
    finally:
        _request_id.reset(token)


def test_exception_and_no_request_id() -> None:
    formatter = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("citizen.test").makeRecord(
            "citizen.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(formatter.format(record))
    assert line == json.loads(_reference(record, formatter))
    assert "request_id" not in line
    assert "RuntimeError: boom" in line["exception"]
