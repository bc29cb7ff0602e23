"""Every message body of the terminal protocol (docs/terminal-protocol.md §4), one class each.

``FIELDS`` lists each body's data objects in wire order; ``MESSAGE_TYPES`` maps a message type to
its body class. Optional fields are ``None`` when absent; repeated ones are tuples.
"""

from __future__ import annotations

from typing import ClassVar, Final

from card.terminal.messages.fields import Body, Field, Kind, fixed, text, u8, u16, u32, u64
from card.terminal.spec import DEFAULT_MAX_BATCH_RECORDS, MessageType, Tag

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

_RESULT: Final = u16("result", Tag.RESULT)
_DETAIL: Final = text("detail", Tag.DETAIL, 0, 64, optional=True)


class Message(Body, frozen=True, kw_only=True):
    TYPE: ClassVar[MessageType]


class Response(Message, frozen=True, kw_only=True):
    result: int = 0
    detail: str | None = None


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
        _RESULT,
        _DETAIL,
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
        _RESULT,
        _DETAIL,
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
    FIELDS = (_RESULT, _DETAIL)


class ErrorResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.ERROR
    FIELDS = (_RESULT, _DETAIL)


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

    def fare(self, entry_stop: int | None, exit_stop: int | None) -> int:
        if entry_stop is None or exit_stop is None or not self.per_stop_fare:
            return self.base_fare
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
        _RESULT,
        _DETAIL,
        u32("fare_version", Tag.FARE_VERSION, optional=True),
        u32("parameter_version", Tag.PARAMETER_VERSION, optional=True),
        u16("qr_validity", Tag.QR_VALIDITY, optional=True),
        u32("issuers", Tag.ISSUER, repeated=True),
        Field("fares", Tag.FARE_RULE, Kind.ITEMS, item=FareRule),
        Field("keys", Tag.PLATFORM_KEY, Kind.ITEMS, item=PlatformKey),
    )
    fare_version: int | None = None
    parameter_version: int | None = None
    qr_validity: int | None = None
    issuers: tuple[int, ...] = ()
    fares: tuple[FareRule, ...] = ()
    keys: tuple[PlatformKey, ...] = ()


class Blacklist(Message, frozen=True, kw_only=True):
    TYPE = MessageType.BLACKLIST
    FIELDS = (u32("since_version", Tag.BLACKLIST_VERSION),)
    since_version: int = 0


class BlacklistResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.BLACKLIST_RESPONSE
    FIELDS = (
        _RESULT,
        _DETAIL,
        u32("version", Tag.BLACKLIST_VERSION, optional=True),
        u8("full", Tag.FULL_LIST, optional=True),
        text("added", Tag.ADDED, 1, 20, kind=Kind.DIGITS, repeated=True),
        text("removed", Tag.REMOVED, 1, 20, kind=Kind.DIGITS, repeated=True),
    )
    version: int | None = None
    full: int | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


# --- offline records -------------------------------------------------------------------------------------


class OfflineRecord(Body, frozen=True, kw_only=True):
    """One offline transaction; which optional fields are required depends on ``kind`` (spec §5)."""

    FIELDS = (
        u8("kind", Tag.RECORD_KIND),
        u32("terminal_serial", Tag.TERMINAL_SERIAL),
        fixed("app_serial", Tag.APP_SERIAL, 10),
        fixed("issuer_id", Tag.ISSUER_ID, 8, optional=True),
        u32("card_counter", Tag.CARD_COUNTER),
        u32("amount", Tag.AMOUNT),
        u32("balance_before", Tag.BALANCE_BEFORE, optional=True),
        u8("txn_type", Tag.TXN_TYPE, optional=True),
        fixed("psam_terminal_no", Tag.PSAM_TERMINAL_NO, 6, optional=True),
        fixed("txn_time", Tag.TXN_TIME, 7),
        fixed("tac", Tag.TAC, 4),
        u8("key_version", Tag.KEY_VERSION, optional=True),
        u32("blacklist_version", Tag.TAP_BLACKLIST_VERSION),
        text("line", Tag.LINE, 1, 16, kind=Kind.IDENT, optional=True),
        u16("stop", Tag.STOP, optional=True),
        u16("entry_stop", Tag.ENTRY_STOP, optional=True),
        fixed("entry_time", Tag.ENTRY_TIME, 7, optional=True),
        Field("qr_payload", Tag.QR_PAYLOAD, Kind.BYTES, low=1, high=512, optional=True),
        fixed("sam_no", Tag.SAM_NO, 4, optional=True),
        fixed("terminal_node", Tag.TERMINAL_NODE, 4, optional=True),
        u32("qr_time", Tag.QR_TIME, optional=True),
    )
    kind: int
    terminal_serial: int
    app_serial: bytes
    issuer_id: bytes | None = None
    card_counter: int
    amount: int
    balance_before: int | None = None
    txn_type: int | None = None
    psam_terminal_no: bytes | None = None
    txn_time: bytes
    tac: bytes
    key_version: int | None = None
    blacklist_version: int = 0
    line: str | None = None
    stop: int | None = None
    entry_stop: int | None = None
    entry_time: bytes | None = None
    qr_payload: bytes | None = None
    sam_no: bytes | None = None
    terminal_node: bytes | None = None
    qr_time: int | None = None


class RecordOutcome(Body, frozen=True, kw_only=True):
    FIELDS = (
        u32("terminal_serial", Tag.TERMINAL_SERIAL),
        u8("result", Tag.RECORD_RESULT),
        u16("reason", Tag.RECORD_REASON),
    )
    terminal_serial: int
    result: int
    reason: int = 0


class BatchUpload(Message, frozen=True, kw_only=True):
    TYPE = MessageType.BATCH_UPLOAD
    FIELDS = (
        u32("batch_number", Tag.BATCH_NUMBER),
        u16("record_count", Tag.RECORD_COUNT),
        Field("records", Tag.ITEM, Kind.ITEMS, item=OfflineRecord, max_items=DEFAULT_MAX_BATCH_RECORDS),
    )
    batch_number: int
    record_count: int
    records: tuple[OfflineRecord, ...] = ()


class BatchResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.BATCH_RESPONSE
    FIELDS = (
        _RESULT,
        _DETAIL,
        u32("batch_number", Tag.BATCH_NUMBER, optional=True),
        u16("record_count", Tag.RECORD_COUNT, optional=True),
        Field("outcomes", Tag.ITEM, Kind.ITEMS, item=RecordOutcome),
    )
    batch_number: int | None = None
    record_count: int | None = None
    outcomes: tuple[RecordOutcome, ...] = ()


# --- online load (圈存), balance, reversal ------------------------------------------------------------------


class Load(Message, frozen=True, kw_only=True):
    """INITIALIZE FOR LOAD as the card answered it, for the host to check MAC1 and answer MAC2."""

    TYPE = MessageType.LOAD
    FIELDS = (
        fixed("load_id", Tag.LOAD_ID, 16),
        fixed("app_serial", Tag.APP_SERIAL, 10),
        fixed("issuer_id", Tag.ISSUER_ID, 8),
        u32("amount", Tag.AMOUNT),
        u32("balance_before", Tag.BALANCE_BEFORE),
        u16("online_counter", Tag.ONLINE_COUNTER),
        u8("key_version", Tag.KEY_VERSION),
        fixed("pseudo_random", Tag.PSEUDO_RANDOM, 4),
        fixed("mac1", Tag.MAC1, 4),
        fixed("psam_terminal_no", Tag.PSAM_TERMINAL_NO, 6),
        text("funding", Tag.FUNDING, 1, 40),
    )
    load_id: bytes
    app_serial: bytes
    issuer_id: bytes
    amount: int
    balance_before: int
    online_counter: int
    key_version: int
    pseudo_random: bytes
    mac1: bytes
    psam_terminal_no: bytes
    funding: str = "cash"


class LoadResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.LOAD_RESPONSE
    FIELDS = (
        _RESULT,
        _DETAIL,
        fixed("load_id", Tag.LOAD_ID, 16, optional=True),
        fixed("host_time", Tag.HOST_TIME_DT7, 7, optional=True),
        fixed("mac2", Tag.MAC2, 4, optional=True),
    )
    load_id: bytes | None = None
    host_time: bytes | None = None
    mac2: bytes | None = None


class LoadConfirm(Message, frozen=True, kw_only=True):
    TYPE = MessageType.LOAD_CONFIRM
    FIELDS = (
        fixed("load_id", Tag.LOAD_ID, 16),
        fixed("tac", Tag.TAC, 4),
        u32("new_balance", Tag.NEW_BALANCE),
    )
    load_id: bytes
    tac: bytes
    new_balance: int


class LoadConfirmResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.LOAD_CONFIRM_RESPONSE
    FIELDS = (_RESULT, _DETAIL)


class Balance(Message, frozen=True, kw_only=True):
    TYPE = MessageType.BALANCE
    FIELDS = (fixed("app_serial", Tag.APP_SERIAL, 10),)
    app_serial: bytes


class BalanceResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.BALANCE_RESPONSE
    FIELDS = (_RESULT, _DETAIL, u32("balance", Tag.BALANCE, optional=True))
    balance: int | None = None


class Reversal(Message, frozen=True, kw_only=True):
    """Undo a load whose CREDIT FOR LOAD did not reach the card (its online counter did not move)."""

    TYPE = MessageType.REVERSAL
    FIELDS = (fixed("load_id", Tag.LOAD_ID, 16), u8("reason", Tag.REVERSAL_REASON))
    load_id: bytes
    reason: int = 0


class ReversalResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.REVERSAL_RESPONSE
    FIELDS = (_RESULT, _DETAIL)


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
        _RESULT,
        _DETAIL,
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
