"""Terminal link protocol: the constants a terminal vendor implements (docs/terminal-protocol.md).

Everything here is shared, byte for byte, by the host (``card.terminal.gateway``/``host``) and the
simulated terminals in ``mock_terminals``. Nothing here does I/O.

Tags are EMV-style BER-TLV tags (``card.terminal.tlv``) of the private class: ``E1``/``E2``/``E3``...
are constructed templates, ``DFxx`` primitive data objects.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = [
    "DEFAULT_MAX_BATCH_RECORDS",
    "MAC_SIZE",
    "MAX_BLACKLIST_PAGE_ENTRIES",
    "PROTOCOL_VERSION",
    "UNAUTHENTICATED_MAC",
    "Flag",
    "MessageType",
    "RecordKind",
    "RecordReason",
    "RecordResult",
    "ResultCode",
    "Tag",
    "TerminalKind",
]

PROTOCOL_VERSION: Final = 1
MAC_SIZE: Final = 8  # AES-128-CMAC (NIST SP 800-38B) truncated to 64 bits (SP 800-38B §5.4 allows it)
UNAUTHENTICATED_MAC: Final = bytes(MAC_SIZE)  # error answers sent before any session key exists
DEFAULT_MAX_BATCH_RECORDS: Final = 500
# The most card numbers (DF29 + DF2A) one BLACKLIST_RESPONSE carries. An entry is at most 22 bytes
# (2-byte tag, 1-byte length, 19 digits: the list holds bigints); everything else in the answer,
# with a 16-character terminal id, a 64-character detail and a 20-digit continuation key, is under
# 200 bytes. 2,900 entries are at most 63,800 + 200 bytes: the answer always fits one frame.
MAX_BLACKLIST_PAGE_ENTRIES: Final = 2_900


class Tag(IntEnum):
    # Templates (constructed, private class)
    HEADER = 0xE1
    BODY = 0xE2
    ITEM = 0xE3  # one offline record (batch upload) or one record outcome (batch response)
    FARE_RULE = 0xE4  # one fare rule (parameter download)
    PLATFORM_KEY = 0xE5  # one platform QR public key (parameter download)
    # Header data objects
    VERSION = 0xDF01  # u8
    MESSAGE_TYPE = 0xDF02  # u8
    TERMINAL_ID = 0xDF03  # ASCII 1..16 of [0-9A-Z-]
    SEQUENCE = 0xDF04  # u32, strictly increasing within a session
    TIME = 0xDF05  # u32, sender's clock, UTC epoch seconds
    # Common body data objects
    RESULT = 0xDF10  # u16 ResultCode
    DETAIL = 0xDF11  # ASCII 0..64, human-readable reason
    NONCE = 0xDF12  # 16 bytes
    WRAPPED_KEY = 0xDF13  # 24 bytes: AES key wrap (RFC 3394) of a 16-byte key
    SERVER_TIME = 0xDF14  # u32
    FARE_VERSION = 0xDF15  # u32
    BLACKLIST_VERSION = 0xDF16  # u32
    PARAMETER_VERSION = 0xDF17  # u32 (issuer whitelist + platform keys + QR validity)
    SOFTWARE_VERSION = 0xDF18  # ASCII 0..32
    SESSION_TTL = 0xDF19  # u32 seconds
    KEY_CHECK = 0xDF1A  # 3 bytes: CMAC(session key, 16 x 00)[:3]
    PENDING_RECORDS = 0xDF1B  # u32
    # Parameters
    LINE = 0xDF20  # ASCII 1..16
    BASE_FARE = 0xDF21  # u32 fen
    PER_STOP_FARE = 0xDF22  # u32 fen
    MAX_FARE = 0xDF23  # u32 fen
    ISSUER = 0xDF24  # u32 issuer id (repeated)
    KEY_ID = 0xDF25  # u16
    PUBLIC_KEY = 0xDF26  # 33 bytes, compressed P-256 point
    QR_VALIDITY = 0xDF27  # u16 seconds
    FULL_LIST = 0xDF28  # u8: 1 = the answer is a full snapshot (replace the local list)
    ADDED = 0xDF29  # ASCII digits 1..20, a card number added (repeated)
    REMOVED = 0xDF2A  # ASCII digits 1..20, a card number removed (repeated)
    DEFAULT_FARE = 0xDF2B  # u32 fen: the fare of a line the fare rules do not list
    LIST_AFTER = 0xDF2C  # ASCII digits 1..20: a paged blacklist continues after this card number
    LIST_VERSION = 0xDF2D  # u32: the version of the blacklist being paged (continuation requests)
    # Batch upload
    BATCH_NUMBER = 0xDF30  # u32
    RECORD_COUNT = 0xDF31  # u16
    BATCH_TO = 0xDF32  # u32 (settlement period: last batch)
    TOTAL_COUNT = 0xDF33  # u32
    TOTAL_AMOUNT = 0xDF34  # u64 fen
    HOST_COUNT = 0xDF35  # u32
    HOST_AMOUNT = 0xDF36  # u64 fen
    # Record fields
    RECORD_KIND = 0xDF40  # u8 RecordKind
    TERMINAL_SERIAL = 0xDF41  # u32 (PSAM/SAM transaction serial)
    APP_SERIAL = 0xDF42  # 10 bytes: application serial (card number, BCD) or QR account
    ISSUER_ID = 0xDF43  # 8 bytes (file 0x15 bytes 0..7)
    CARD_COUNTER = 0xDF44  # u32: offline counter before the debit (u16 value); QR: generation time
    AMOUNT = 0xDF45  # u32 fen
    BALANCE_BEFORE = 0xDF46  # u32 fen
    TXN_TYPE = 0xDF47  # u8 (06, 09, 02)
    PSAM_TERMINAL_NO = 0xDF48  # 6 bytes
    TXN_TIME = 0xDF49  # 7 bytes DT7, Beijing wall-clock time
    TAC = 0xDF4A  # 4 bytes
    KEY_VERSION = 0xDF4B  # u8
    TAP_BLACKLIST_VERSION = 0xDF4C  # u32: the blacklist version the reader had at the tap
    STOP = 0xDF4D  # u16 stop of this tap (entry stop on entry, exit stop on exit)
    ENTRY_STOP = 0xDF4E  # u16 (exit records of a compound trip)
    ENTRY_TIME = 0xDF4F  # 7 bytes DT7 (exit records of a compound trip)
    QR_PAYLOAD = 0xDF50  # 191 bytes (card.qr payload as scanned)
    SAM_NO = 0xDF51  # 4 bytes
    TERMINAL_NODE = 0xDF52  # 4 bytes
    QR_TIME = 0xDF53  # u32 terminal time of the QR tap, epoch seconds
    RECORD_RESULT = 0xDF5A  # u8 RecordResult
    RECORD_REASON = 0xDF5B  # u16 RecordReason
    # Online load and inquiries
    LOAD_ID = 0xDF60  # 16 bytes (UUID chosen by the kiosk; idempotency key)
    ONLINE_COUNTER = 0xDF61  # u16
    PSEUDO_RANDOM = 0xDF62  # 4 bytes
    MAC1 = 0xDF63  # 4 bytes
    FUNDING = 0xDF64  # ASCII 1..40: "cash" or a top-up order reference
    HOST_TIME_DT7 = 0xDF65  # 7 bytes DT7 that MAC2 covers and CREDIT FOR LOAD carries
    MAC2 = 0xDF66  # 4 bytes
    NEW_BALANCE = 0xDF67  # u32
    BALANCE = 0xDF68  # u32 (host view)
    REVERSAL_REASON = 0xDF69  # u8
    MAC = 0xDF7F  # 8 bytes, last object of every message


class MessageType(IntEnum):
    """Requests go terminal → host; each answer's type is ``request | 0x80``."""

    SIGN_ON = 0x01
    HEARTBEAT = 0x02
    PARAMETERS = 0x03
    BLACKLIST = 0x04
    BATCH_UPLOAD = 0x05
    LOAD = 0x06
    LOAD_CONFIRM = 0x07
    BALANCE = 0x08
    REVERSAL = 0x09
    SETTLEMENT = 0x0A
    SIGN_OFF = 0x0B
    SIGN_ON_RESPONSE = 0x81
    HEARTBEAT_RESPONSE = 0x82
    PARAMETERS_RESPONSE = 0x83
    BLACKLIST_RESPONSE = 0x84
    BATCH_RESPONSE = 0x85
    LOAD_RESPONSE = 0x86
    LOAD_CONFIRM_RESPONSE = 0x87
    BALANCE_RESPONSE = 0x88
    REVERSAL_RESPONSE = 0x89
    SETTLEMENT_RESPONSE = 0x8A
    SIGN_OFF_RESPONSE = 0x8B
    ERROR = 0xFF  # the host could not attribute the frame to a request it can answer


class ResultCode(IntEnum):
    OK = 0x0000
    # 01xx: the frame or message is malformed (the connection stays usable unless noted)
    MALFORMED_TLV = 0x0101
    FRAME_TOO_LARGE = 0x0102  # the host closes the connection after this answer
    UNKNOWN_TAG = 0x0103
    MISSING_FIELD = 0x0104
    BAD_FIELD_LENGTH = 0x0105
    BAD_FIELD_VALUE = 0x0106
    UNSUPPORTED_VERSION = 0x0107
    UNKNOWN_MESSAGE_TYPE = 0x0108
    BAD_MAC = 0x0109
    REPLAYED_SEQUENCE = 0x010A
    BATCH_TOO_LARGE = 0x010B
    # 02xx: session and terminal state
    NOT_SIGNED_ON = 0x0201
    UNKNOWN_TERMINAL = 0x0202
    TERMINAL_DISABLED = 0x0203
    SIGN_ON_REPLAYED = 0x0204
    CLOCK_DRIFT = 0x0205
    TERMINAL_MISMATCH = 0x0206
    NOT_ALLOWED_FOR_KIND = 0x0207
    # 03xx: business refusals
    LOAD_MAC1_INVALID = 0x0301
    INSUFFICIENT_FUNDS = 0x0302
    CARD_BLOCKED = 0x0303
    UNKNOWN_CARD = 0x0304
    LOAD_NOT_FOUND = 0x0305
    LOAD_STATE = 0x0306
    LOAD_CONFLICT = 0x0307
    AMOUNT_INVALID = 0x0308
    SETTLEMENT_MISMATCH = 0x0309
    # 05xx: the host cannot serve now; retry later (nothing was committed)
    HOST_UNAVAILABLE = 0x0501
    INTERNAL_ERROR = 0x0502


class TerminalKind(IntEnum):
    BUS = 1
    GATE = 2
    KIOSK = 3


class RecordKind(IntEnum):
    PURCHASE = 1  # e-purse purchase, TAC over type 06
    COMPOUND = 2  # compound (CAPP) purchase, entry or exit, TAC over type 09
    QR = 3  # QR tap: the QR payload plus the reader SAM's TAC (card-protocol.md §5.4)
    TORN_PROOF = 4  # a purchase recovered with GET TRANSACTION PROVE after a torn tap


class RecordResult(IntEnum):
    ACCEPTED = 0
    DUPLICATE = 1
    REJECTED = 2  # held in the host's suspense queue with the reason; not charged


class RecordReason(IntEnum):
    NONE = 0
    BAD_TAC = 1
    UNKNOWN_CARD = 2
    BLACKLISTED = 3  # listed in a version the reader already had
    BALANCE = 4  # balance before < amount
    CLOCK_DRIFT = 5  # record time too far ahead of the host clock, or older than the upload limit
    LEDGER_REFUSED = 6  # the e-purse account refused the debit
    QR_INVALID = 7  # QR signature, expiry, issuer or key check failed
    BAD_QR_TAC = 8
    MALFORMED = 9
    UNKNOWN_KEY_VERSION = 10
    DUPLICATE_CARD_COUNTER = 11  # the same (card, counter, type) was already accepted from elsewhere


class Flag(IntEnum):
    """Follow-up flags for operators (``card.terminal.host.chains``): on accepted records, whose
    money still moves; a serial gap also on a refused record that follows it."""

    COUNTER_GAP = 1
    SERIAL_GAP = 2
    BALANCE_CHAIN = 3
    LATE_BLACKLIST = 4  # the card was listed after the reader's version: the issuer bears it
    FARE_MISMATCH = 5
