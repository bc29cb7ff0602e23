"""Every message body of the terminal protocol (docs/terminal-protocol.md §4), one class each: the
session and parameter bodies here, batch upload in ``batch``, kiosk bodies in ``loads``.

``FIELDS`` lists each body's data objects in wire order; ``MESSAGE_TYPES`` maps a message type to
its body class. Optional fields are ``None`` when absent; repeated ones are tuples.
"""

from __future__ import annotations

from typing import Final

from card.terminal.messages.base import DETAIL, RESULT, Message, Response
from card.terminal.messages.batch import BatchResponse, BatchUpload, OfflineRecord, RecordOutcome
from card.terminal.messages.fields import Body, Field, Kind, fixed, text, u8, u16, u32, u64
from card.terminal.messages.loads import (
    Balance,
    BalanceResponse,
    Load,
    LoadConfirm,
    LoadConfirmResponse,
    LoadResponse,
    Reversal,
    ReversalResponse,
)
from card.terminal.spec import MessageType, Tag

__all__ = [
    "MESSAGE_TYPES",
    "Balance",
    "BalanceResponse",
    "BatchResponse",
    "BatchUpload",
    "Blacklist",
    "BlacklistResponse",
    "ErrorResponse",
    "FareRule",
    "Heartbeat",
    "HeartbeatResponse",
    "Load",
    "LoadConfirm",
    "LoadConfirmResponse",
    "LoadResponse",
    "Message",
    "OfflineRecord",
    "Parameters",
    "ParametersResponse",
    "PlatformKey",
    "RecordOutcome",
    "Response",
    "Reversal",
    "ReversalResponse",
    "Settlement",
    "SettlementResponse",
    "SignOff",
    "SignOffResponse",
    "SignOn",
    "SignOnResponse",
]


# --- sign-on, heartbeat, sign-off ------------------------------------------------------------------------


class SignOn(Message, frozen=True, kw_only=True):
    TYPE = MessageType.SIGN_ON
    FIELDS = (
        fixed("nonce", Tag.NONCE, 16),
        text("software_version", Tag.SOFTWARE_VERSION, 0, 32),
        u32("fare_version", Tag.FARE_VERSION),
        u32("blacklist_version", Tag.BLACKLIST_VERSION),
        u32("parameter_version", Tag.PARAMETER_VERSION),
    )
    nonce: bytes
    software_version: str = ""
    fare_version: int = 0
    blacklist_version: int = 0
    parameter_version: int = 0


class SignOnResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.SIGN_ON_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        fixed("wrapped_key", Tag.WRAPPED_KEY, 24, optional=True),
        fixed("key_check", Tag.KEY_CHECK, 3, optional=True),
        u32("server_time", Tag.SERVER_TIME, optional=True),
        u32("session_ttl", Tag.SESSION_TTL, optional=True),
        u32("fare_version", Tag.FARE_VERSION, optional=True),
        u32("blacklist_version", Tag.BLACKLIST_VERSION, optional=True),
        u32("parameter_version", Tag.PARAMETER_VERSION, optional=True),
    )
    wrapped_key: bytes | None = None
    key_check: bytes | None = None
    server_time: int | None = None
    session_ttl: int | None = None
    fare_version: int | None = None
    blacklist_version: int | None = None
    parameter_version: int | None = None


class Heartbeat(Message, frozen=True, kw_only=True):
    TYPE = MessageType.HEARTBEAT
    FIELDS = (
        u32("fare_version", Tag.FARE_VERSION),
        u32("blacklist_version", Tag.BLACKLIST_VERSION),
        u32("parameter_version", Tag.PARAMETER_VERSION),
        u32("pending_records", Tag.PENDING_RECORDS),
    )
    fare_version: int = 0
    blacklist_version: int = 0
    parameter_version: int = 0
    pending_records: int = 0


class HeartbeatResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.HEARTBEAT_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        u32("server_time", Tag.SERVER_TIME, optional=True),
        u32("fare_version", Tag.FARE_VERSION, optional=True),
        u32("blacklist_version", Tag.BLACKLIST_VERSION, optional=True),
        u32("parameter_version", Tag.PARAMETER_VERSION, optional=True),
    )
    server_time: int | None = None
    fare_version: int | None = None
    blacklist_version: int | None = None
    parameter_version: int | None = None


class SignOff(Message, frozen=True, kw_only=True):
    TYPE = MessageType.SIGN_OFF
    FIELDS = ()


class SignOffResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.SIGN_OFF_RESPONSE
    FIELDS = (RESULT, DETAIL)


class ErrorResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.ERROR
    FIELDS = (RESULT, DETAIL)


# --- parameters and blacklist ----------------------------------------------------------------------------


class FareRule(Body, frozen=True, kw_only=True):
    """Fare on ``line``: ``min(max_fare, base_fare + per_stop_fare * |exit stop - entry stop|)``."""

    FIELDS = (
        text("line", Tag.LINE, 1, 16, kind=Kind.IDENT),
        u32("base_fare", Tag.BASE_FARE),
        u32("per_stop_fare", Tag.PER_STOP_FARE),
        u32("max_fare", Tag.MAX_FARE),
    )
    line: str
    base_fare: int
    per_stop_fare: int = 0
    max_fare: int = 0

    def fare(self, entry_stop: int | None, exit_stop: int | None, default_fare: int | None = None) -> int:
        """The line fare as the host rates it (``payments.fares.line_fare``): a flat line's base
        fare; on a distance line without both stops, the operator's ``default_fare``
        (``ParametersResponse``), or the base fare when the terminal has none."""
        if not self.per_stop_fare:
            return self.base_fare
        if entry_stop is None or exit_stop is None:
            return self.base_fare if default_fare is None else default_fare
        return min(
            self.max_fare or 2**32 - 1, self.base_fare + self.per_stop_fare * abs(exit_stop - entry_stop)
        )


class PlatformKey(Body, frozen=True, kw_only=True):
    FIELDS = (u16("key_id", Tag.KEY_ID), fixed("public_key", Tag.PUBLIC_KEY, 33))
    key_id: int
    public_key: bytes


class Parameters(Message, frozen=True, kw_only=True):
    TYPE = MessageType.PARAMETERS
    FIELDS = ()


class ParametersResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.PARAMETERS_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        u32("fare_version", Tag.FARE_VERSION, optional=True),
        u32("parameter_version", Tag.PARAMETER_VERSION, optional=True),
        u16("qr_validity", Tag.QR_VALIDITY, optional=True),
        u32("issuers", Tag.ISSUER, repeated=True),
        Field("fares", Tag.FARE_RULE, Kind.ITEMS, item=FareRule),
        Field("keys", Tag.PLATFORM_KEY, Kind.ITEMS, item=PlatformKey),
        u32("default_fare", Tag.DEFAULT_FARE, optional=True),
    )
    fare_version: int | None = None
    parameter_version: int | None = None
    qr_validity: int | None = None
    issuers: tuple[int, ...] = ()
    fares: tuple[FareRule, ...] = ()
    keys: tuple[PlatformKey, ...] = ()
    default_fare: int | None = None  # absent: the operator has no fare table yet


class Blacklist(Message, frozen=True, kw_only=True):
    """The list since ``since_version``; a list too long for one answer comes in pages (§8): the
    next page is asked with the same ``since_version``, the ``list_version`` of the first page's
    answer and the ``after`` of the previous one (both absent on the first request)."""

    TYPE = MessageType.BLACKLIST
    FIELDS = (
        u32("since_version", Tag.BLACKLIST_VERSION),
        u32("list_version", Tag.LIST_VERSION, optional=True),
        text("after", Tag.LIST_AFTER, 1, 20, kind=Kind.DIGITS, optional=True),
    )
    since_version: int = 0
    list_version: int | None = None
    after: str | None = None


class BlacklistResponse(Response, frozen=True, kw_only=True):
    """One page of the list: ``next_after`` is present when more pages follow (§8). The new field
    is last and absent on a list that fits one answer, so such an answer is byte for byte the one
    of a host that does not page."""

    TYPE = MessageType.BLACKLIST_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        u32("version", Tag.BLACKLIST_VERSION, optional=True),
        u8("full", Tag.FULL_LIST, optional=True),
        text("added", Tag.ADDED, 1, 20, kind=Kind.DIGITS, repeated=True),
        text("removed", Tag.REMOVED, 1, 20, kind=Kind.DIGITS, repeated=True),
        text("next_after", Tag.LIST_AFTER, 1, 20, kind=Kind.DIGITS, optional=True),
    )
    version: int | None = None
    full: int | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    next_after: str | None = None


class Settlement(Message, frozen=True, kw_only=True):
    TYPE = MessageType.SETTLEMENT
    FIELDS = (
        u32("batch_from", Tag.BATCH_NUMBER),
        u32("batch_to", Tag.BATCH_TO),
        u32("count", Tag.TOTAL_COUNT),
        u64("amount", Tag.TOTAL_AMOUNT),
    )
    batch_from: int
    batch_to: int
    count: int
    amount: int


class SettlementResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.SETTLEMENT_RESPONSE
    FIELDS = (
        RESULT,
        DETAIL,
        u32("host_count", Tag.HOST_COUNT, optional=True),
        u64("host_amount", Tag.HOST_AMOUNT, optional=True),
    )
    host_count: int | None = None
    host_amount: int | None = None


MESSAGE_TYPES: Final[dict[int, type[Message]]] = {
    cls.TYPE: cls
    for cls in (
        SignOn, SignOnResponse, Heartbeat, HeartbeatResponse, Parameters, ParametersResponse,
        Blacklist, BlacklistResponse, BatchUpload, BatchResponse, Load, LoadResponse, LoadConfirm,
        LoadConfirmResponse, Balance, BalanceResponse, Reversal, ReversalResponse, Settlement,
        SettlementResponse, SignOff, SignOffResponse, ErrorResponse,
    )
}  # fmt: skip
