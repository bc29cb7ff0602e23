"""A software PBOC / JT/T 978 e-purse card answering the APDUs of card-protocol.md §1.

Personalised from the card issue's personalisation record (``citizen-card-perso/1``, see
:func:`open_personalisation`), or directly from keys in tests. Status words: ``9000`` OK, ``6A82``
file not found, ``6D00`` unknown instruction, ``6985`` conditions not satisfied, ``9302`` bad MAC,
``9401`` insufficient balance, ``9406`` no such transaction (GET TRANSACTION PROVE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card.crypto import (
    LoadInputs,
    PurchaseInputs,
    TransactionType,
    epurse_mac,
    load_mac1,
    load_mac2,
    load_session_key,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
    purchase_tac,
    tac_key,
    verify_mac,
)
from card.qr.payload import verify_raw

__all__ = ["SW_OK", "SoftwareCard", "TapRefused", "open_personalisation"]

SW_OK = b"\x90\x00"
_AID = bytes.fromhex("A000000632010105")
_PERSO_FORMAT = "citizen-card-perso/1"


class TapRefused(Exception):
    """The card (or the terminal, on the card's answer) refused the transaction."""


@dataclass
class _Txn:
    txn_type: int
    amount: int
    mac2: bytes
    tac: bytes


@dataclass
class SoftwareCard:
    card_number: str
    app_serial: bytes  # 10 bytes, file 0x15 bytes 10..19
    issuer_id: bytes  # 8 bytes, file 0x15 bytes 0..7
    dpk: bytes
    dlk: bytes
    dtk: bytes
    key_version: int = 1
    balance: int = 0
    offline_counter: int = 0
    online_counter: int = 0
    overdraft_limit: int = 0
    selected: bool = False
    records: dict[int, list[bytes]] = field(default_factory=dict)  # SFI -> records, newest first
    _pending: dict[str, object] = field(default_factory=dict)
    _proofs: dict[tuple[int, int], _Txn] = field(default_factory=dict)  # (type, counter after) -> txn

    def __repr__(self) -> str:
        return f"SoftwareCard({self.card_number}, balance={self.balance})"

    # --- APDU dispatcher -------------------------------------------------------------------------------

    def apdu(self, command: bytes) -> bytes:
        cla, ins, p1, p2 = command[:4]
        data = command[5 : 5 + command[4]] if len(command) > 5 else b""
        if (cla, ins) == (0x00, 0xA4):
            if data == _AID:
                self.selected = True
                return self._file15() + SW_OK
            return b"\x6a\x82"
        if not self.selected:
            return b"\x69\x85"
        handler = {
            (0x80, 0x5C): self._get_balance,
            (0x80, 0x50): self._initialize,
            (0x80, 0x54): self._debit,
            (0x80, 0x52): self._credit,
            (0x80, 0x5A): self._prove,
            (0x00, 0xB2): self._read_record,
            (0x80, 0xDC): self._update_capp,
            (0x00, 0xB0): self._read_binary,
        }.get((cla, ins))
        if handler is None:
            return b"\x6d\x00"
        return handler(p1, p2, data)

    def _file15(self) -> bytes:
        return (
            self.issuer_id
            + b"\x01\x01"
            + self.app_serial
            + b"\x20\x24\x01\x01"
            + b"\x20\x34\x01\x01"
            + bytes(2)
        )

    def _read_binary(self, p1: int, _p2: int, _data: bytes) -> bytes:
        return self._file15() + SW_OK if p1 == 0x95 else b"\x6a\x82"

    def _get_balance(self, p1: int, _p2: int, _data: bytes) -> bytes:
        value = self.balance if p1 == 0x03 else self.balance + self.overdraft_limit
        return value.to_bytes(4, "big") + SW_OK

    def _initialize(self, p1: int, _p2: int, data: bytes) -> bytes:
        amount = int.from_bytes(data[1:5], "big")
        terminal_no = data[5:11]
        rnd = os.urandom(4)
        if p1 in (0x01, 0x03):  # purchase / compound purchase (§1.3, §1.7)
            if amount > self.balance + self.overdraft_limit:
                return b"\x94\x01"
            self._pending = {"kind": "purchase", "amount": amount, "terminal": terminal_no, "rnd": rnd,
                             "type": 0x09 if p1 == 0x03 else 0x06}  # fmt: skip
            return (
                self.balance.to_bytes(4, "big") + self.offline_counter.to_bytes(2, "big")
                + self.overdraft_limit.to_bytes(3, "big") + bytes((self.key_version, 0x00)) + rnd + SW_OK
            )  # fmt: skip
        if p1 == 0x00:  # load (§1.6)
            seslk = load_session_key(self.dlk, rnd, self.online_counter)
            inputs = LoadInputs(balance_before=self.balance, amount=amount, terminal_no=terminal_no)
            self._pending = {"kind": "load", "amount": amount, "terminal": terminal_no, "seslk": seslk}
            return (
                self.balance.to_bytes(4, "big") + self.online_counter.to_bytes(2, "big")
                + bytes((self.key_version, 0x00)) + rnd + load_mac1(seslk, inputs) + SW_OK
            )  # fmt: skip
        return b"\x6a\x86"

    def _debit(self, _p1: int, _p2: int, data: bytes) -> bytes:
        pending, self._pending = self._pending, {}
        if pending.get("kind") != "purchase":
            return b"\x69\x85"
        serial = int.from_bytes(data[0:4], "big")
        when, mac1 = data[4:11], data[11:15]
        amount, terminal_no, txn_type = pending["amount"], pending["terminal"], pending["type"]
        assert isinstance(amount, int) and isinstance(terminal_no, bytes) and isinstance(txn_type, int)
        rnd = pending["rnd"]
        assert isinstance(rnd, bytes)
        sespk = purchase_session_key(self.dpk, rnd, self.offline_counter, serial)
        inputs = PurchaseInputs(
            amount=amount,
            terminal_no=terminal_no,
            terminal_txn_serial=serial,
            transaction_time=when,
            txn_type=txn_type,
        )
        if not verify_mac(purchase_mac1(sespk, inputs), mac1):
            return b"\x93\x02"
        self.balance -= amount
        self.offline_counter += 1
        tac = purchase_tac(self.dtk, inputs)
        mac2 = purchase_mac2(sespk, amount)
        self._proofs[(txn_type, self.offline_counter)] = _Txn(txn_type, amount, mac2, tac)
        self._log(0x18, self.offline_counter - 1, amount, txn_type, terminal_no + when)
        return tac + mac2 + SW_OK

    def _credit(self, _p1: int, _p2: int, data: bytes) -> bytes:
        pending, self._pending = self._pending, {}
        if pending.get("kind") != "load":
            return b"\x69\x85"
        when, mac2 = data[0:7], data[7:11]
        amount, terminal_no, seslk = pending["amount"], pending["terminal"], pending["seslk"]
        assert isinstance(amount, int) and isinstance(terminal_no, bytes) and isinstance(seslk, bytes)
        inputs = LoadInputs(balance_before=self.balance, amount=amount, terminal_no=terminal_no)
        if not verify_mac(load_mac2(seslk, inputs, when), mac2):
            return b"\x93\x02"
        counter = self.online_counter
        self.balance += amount
        self.online_counter += 1
        # Load TAC: the reference's estimated layout (card-protocol.md §1.6, [uncertain]).
        tac = epurse_mac(
            tac_key(self.dtk),
            self.balance.to_bytes(4, "big") + counter.to_bytes(2, "big") + amount.to_bytes(4, "big")
            + bytes((TransactionType.EP_LOAD,)) + terminal_no + when,
        )  # fmt: skip
        self._proofs[(TransactionType.EP_LOAD, self.online_counter)] = _Txn(0x02, amount, b"", tac)
        self._log(0x18, counter, amount, 0x02, terminal_no + when)
        return tac + SW_OK

    def _prove(self, _p1: int, p2: int, data: bytes) -> bytes:
        proof = self._proofs.get((p2, int.from_bytes(data[0:2], "big")))
        if proof is None:
            return b"\x94\x06"
        return proof.mac2.ljust(4, b"\x00") + proof.tac + SW_OK

    def _log(self, sfi: int, counter: int, amount: int, txn_type: int, rest: bytes) -> None:
        """A 23-byte SFI 0x18 record (§1.1): counter, RFU, amount, type, terminal no., date, time."""
        record = counter.to_bytes(2, "big") + bytes(3) + amount.to_bytes(4, "big") + bytes((txn_type,)) + rest
        self.records.setdefault(sfi, []).insert(0, record[:23])
        del self.records[sfi][10:]

    def _read_record(self, p1: int, p2: int, _data: bytes) -> bytes:
        records = self.records.get(p2 >> 3, [])
        if not 1 <= p1 <= len(records):
            return b"\x6a\x83"
        return records[p1 - 1] + SW_OK

    def _update_capp(self, p1: int, p2: int, data: bytes) -> bytes:
        sfi = p2 >> 3
        records = self.records.setdefault(sfi, [])
        if p1 == 0 or not records:
            records.insert(0, data)
        else:
            records[0] = data
        return SW_OK


# --- personalisation ---------------------------------------------------------------------------------------


class _Record(msgspec.Struct, kw_only=True):
    format: str
    card_number: str
    app_serial: str
    issuer_id: str
    key_version: int
    overdraft_limit: int
    recipient_kid: str
    ephemeral_public_key: bytes
    nonce: bytes
    encrypted_keys: bytes


class _Signed(msgspec.Struct, kw_only=True):
    payload: bytes
    key_id: int
    signature: bytes


def open_personalisation(
    document: bytes,
    transport_key: ec.EllipticCurvePrivateKey,
    platform_keys: dict[int, ec.EllipticCurvePublicKey] | None = None,
    *,
    balance: int = 0,
) -> SoftwareCard:
    """A card from a signed ``citizen-card-perso/1`` document (the card issue's export format):
    ECDH-ES P-256 → HKDF-SHA256 (salt = ephemeral point, info = the format) → AES-256-GCM over
    ``DPK || DLK || DTK`` with the card number as associated data."""
    signed = msgspec.json.decode(document, type=_Signed)
    if platform_keys is not None:
        key = platform_keys.get(signed.key_id)
        if key is None or not verify_raw(key, signed.signature, signed.payload):
            raise ValueError("personalisation: bad platform signature")
    record = msgspec.json.decode(signed.payload, type=_Record)
    point = transport_key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    if record.format != _PERSO_FORMAT or record.recipient_kid != hashlib.sha256(point).hexdigest():
        raise ValueError("personalisation: not a record for this transport key")
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), record.ephemeral_public_key)
    shared = transport_key.exchange(ec.ECDH(), ephemeral)
    kek = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=record.ephemeral_public_key, info=_PERSO_FORMAT.encode()
    ).derive(shared)
    keys = AESGCM(kek).decrypt(record.nonce, record.encrypted_keys, record.card_number.encode())
    return SoftwareCard(
        card_number=record.card_number,
        app_serial=bytes.fromhex(record.app_serial),
        issuer_id=bytes.fromhex(record.issuer_id),
        dpk=keys[:16],
        dlk=keys[16:32],
        dtk=keys[32:48],
        key_version=record.key_version,
        balance=balance,
        overdraft_limit=record.overdraft_limit,
    )


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
