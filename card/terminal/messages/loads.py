"""Kiosk bodies: online load (圈存), its confirmation, balance, reversal (docs/terminal-protocol.md §6)."""

from __future__ import annotations

from card.terminal.messages.base import DETAIL, RESULT, Message, Response
from card.terminal.messages.fields import fixed, text, u8, u16, u32
from card.terminal.spec import MessageType, Tag

__all__ = [
    "Balance",
    "BalanceResponse",
    "Load",
    "LoadConfirm",
    "LoadConfirmResponse",
    "LoadResponse",
    "Reversal",
    "ReversalResponse",
]

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
        RESULT,
        DETAIL,
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
    FIELDS = (RESULT, DETAIL)


class Balance(Message, frozen=True, kw_only=True):
    TYPE = MessageType.BALANCE
    FIELDS = (fixed("app_serial", Tag.APP_SERIAL, 10),)
    app_serial: bytes


class BalanceResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.BALANCE_RESPONSE
    FIELDS = (RESULT, DETAIL, u32("balance", Tag.BALANCE, optional=True))
    balance: int | None = None


class Reversal(Message, frozen=True, kw_only=True):
    """Undo a load whose CREDIT FOR LOAD did not reach the card (its online counter did not move)."""

    TYPE = MessageType.REVERSAL
    FIELDS = (fixed("load_id", Tag.LOAD_ID, 16), u8("reason", Tag.REVERSAL_REASON))
    load_id: bytes
    reason: int = 0


class ReversalResponse(Response, frozen=True, kw_only=True):
    TYPE = MessageType.REVERSAL_RESPONSE
    FIELDS = (RESULT, DETAIL)
