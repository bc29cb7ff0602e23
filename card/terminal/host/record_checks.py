"""The host's checks of one offline record (card-protocol.md §4, docs/terminal-protocol.md §5.2).

Shared by the batch upload (``batches``), which runs them on every record it receives, and the
suspense queue's resolution (``suspense``), which runs them again on a stored record before an
operator's "accept" may post it: the same code, so an accepted record has passed exactly what an
upload would have checked (structure, this terminal's PSAM, the card and its key version, the
TAC under the card's keys; for a QR ride the QR's signature and the reader's MAC). The time and
policy checks (clock drift, blacklist, fare) are the upload's own: they are what an operator
overrules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from card.crypto import PurchaseInputs, verify_mac
from card.keys import CardKeyRef
from card.qr import OfflineVerifier, QRRejected
from card.terminal.host.batch_commit import Work
from card.terminal.host.ports import CardInfo
from card.terminal.messages import record_mac
from card.terminal.records import parse_dt7, purchase_inputs, qr_account, qr_mac_input
from card.terminal.spec import RecordKind, RecordReason

__all__ = [
    "CARD_KINDS",
    "QR_TXN_TYPE",
    "check_psam",
    "check_qr",
    "check_structure",
    "match_cards",
    "qr_verifier",
]

QR_TXN_TYPE: Final = 0x88
CARD_KINDS: Final = frozenset((RecordKind.PURCHASE, RecordKind.COMPOUND, RecordKind.TORN_PROOF))


def check_structure(work: Work) -> None:
    """The fields the record's kind requires, its time, type and counter (MALFORMED otherwise)."""
    r = work.record
    try:
        work.txn_time = parse_dt7(r.txn_time)
    except ValueError:
        work.reject(RecordReason.MALFORMED, "txn_time")
        work.txn_time = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    if r.kind in CARD_KINDS:
        if None in (r.issuer_id, r.balance_before, r.txn_type, r.psam_terminal_no, r.key_version):
            work.reject(RecordReason.MALFORMED, "card record fields")
        elif r.txn_type not in (0x06, 0x09) or (r.kind == RecordKind.COMPOUND and r.txn_type != 0x09):
            work.reject(RecordReason.MALFORMED, "txn_type")
        if r.card_counter > 0xFFFF:
            work.reject(RecordReason.MALFORMED, "card_counter")
        work.txn_type = r.txn_type or 0
        work.counter = r.card_counter
    elif r.kind == RecordKind.QR:
        if None in (r.qr_payload, r.sam_no, r.terminal_node, r.qr_time):
            work.reject(RecordReason.MALFORMED, "QR record fields")
        work.txn_type = QR_TXN_TYPE
        work.counter = r.card_counter
    else:
        work.reject(RecordReason.MALFORMED, "kind")


def check_psam(work: Work, psam_terminal_no: bytes) -> None:
    """A card record's TAC covers the PSAM terminal number: it must be this terminal's."""
    r = work.record
    if not work.reason and r.kind in CARD_KINDS and r.psam_terminal_no != psam_terminal_no:
        work.reject(RecordReason.BAD_TAC, "PSAM terminal number is not this terminal's")


def match_cards(
    works: list[Work], cards: Mapping[bytes, CardInfo], issuer_id: bytes
) -> tuple[list[Work], list[tuple[CardKeyRef, PurchaseInputs, bytes]]]:
    """Each card record's card; the records whose TAC is to be checked, with the key store's items.

    The card keys are diversified with this platform's issuer id, never with the one a record
    names: a terminal could otherwise fill the key store's cache with keys of made-up issuers."""
    checked: list[Work] = []
    items: list[tuple[CardKeyRef, PurchaseInputs, bytes]] = []
    for w in works:
        card = cards.get(w.record.app_serial)
        if card is None:
            w.reject(RecordReason.UNKNOWN_CARD)
            continue
        w.card, w.card_number = card, card.card_number
        if w.record.key_version != card.key_version:
            w.reject(RecordReason.UNKNOWN_KEY_VERSION, f"card keys are version {card.key_version}")
            continue
        if w.record.issuer_id != issuer_id:
            w.reject(RecordReason.BAD_TAC, "not this platform's issuer")
            continue
        ref = CardKeyRef(card.key_version, card.app_serial, issuer_id)
        items.append((ref, purchase_inputs(w.record), w.record.tac))
        checked.append(w)
    return checked, items


def qr_verifier(
    keys: Mapping[int, ec.EllipticCurvePublicKey], issuers: Iterable[int], validity: int
) -> OfflineVerifier:
    """The QR verifier of the host: the platform's QR keys and issuers. No blacklist here: the
    host's blacklist check is a policy check of its own (the version the reader had)."""
    return OfflineVerifier(keys, issuers, lambda _card: False, validity)


def check_qr(work: Work, verifier: OfflineVerifier, key: bytes, validity: int) -> None:
    """A QR ride: the QR's signature, expiry and issuer at the reader's time, the account and
    generation time the record names, and the reader's MAC under its record key ``key``. Sets
    ``card_number`` (the card is looked up by the caller) when everything holds."""
    r = work.record
    assert r.qr_payload is not None and r.qr_time is not None
    try:
        ride = verifier.verify(r.qr_payload, dt.datetime.fromtimestamp(r.qr_time, dt.UTC), r.amount)
    except QRRejected as exc:
        work.reject(RecordReason.QR_INVALID, exc.reason.value)
        return
    generated = int(ride.generated_at.timestamp())
    if r.app_serial != qr_account(ride.card_number) or r.card_counter != generated:
        work.reject(RecordReason.QR_INVALID, "account or generation time differs from the QR")
        return
    expected = record_mac(key, qr_mac_input(r, validity=validity, generation_time=generated))
    if not verify_mac(expected, r.tac):
        work.reject(RecordReason.BAD_QR_TAC)
        return
    work.card_number = ride.card_number
