"""EMV / qPBOC issuer host: ICC master key, PBOC session key, ARQC check and ARPC (card-protocol.md §3).

Key derivation (§2.1, §3): ``UDK = 3DES(IMK_AC, Y) || 3DES(IMK_AC, ~Y)`` (EMV option A), and the PBOC
session key ``SK = 3DES(UDK, 00×6 || ATC) || 3DES(UDK, 00×6 || ~ATC)``. The SM4 forms of §1.9 are
available through ``cipher=BlockCipher.SM4``. Application cryptograms are computed with 3DES only:
the SM4 MAC's exact form (output length, truncation) is not given by the reference (§1.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from card.crypto._common import encode_bcd, encode_uint, require_length, verify_mac, xor
from card.crypto._des import tdes_ecb_encrypt
from card.crypto._kd import BlockCipher, diversify_key
from card.crypto._mac import retail_mac
from card.crypto._sm4 import sm4_ecb_encrypt

__all__ = [
    "ArqcCvn01Inputs",
    "arqc_cvn01_input",
    "arqc_cvn17_input",
    "cipher_from_iad",
    "cvr_from_iad",
    "derive_emv_common_session_key",
    "derive_icc_master_key",
    "derive_pboc_session_key",
    "emv_diversification_data",
    "generate_ac",
    "generate_arpc_method1",
    "issuer_authentication_data",
    "verify_arqc",
]

_IAD_ALGORITHMS = {0x01: BlockCipher.TDES, 0x04: BlockCipher.SM4}  # §3 IAD layout, §1.9


def emv_diversification_data(pan: str, psn: str | None = None) -> bytes:
    """``Y`` (8 bytes): rightmost 16 digits of ``PAN || PSN``, left-padded with ``0`` (§2.1).

    ``psn`` is the 2-digit PAN sequence number (tag 5F34); ``None`` means absent and counts as ``00``.
    """
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19):
        raise ValueError("PAN must be 12 to 19 decimal digits")
    psn = "00" if psn is None else psn
    if not (psn.isascii() and psn.isdigit() and len(psn) == 2):
        raise ValueError("PSN must be 2 decimal digits")
    return bytes.fromhex((pan + psn)[-16:].rjust(16, "0"))


def derive_icc_master_key(
    imk: bytes, pan: str, psn: str | None = None, *, cipher: BlockCipher = BlockCipher.TDES
) -> bytes:
    """ICC master key (UDK) from the issuer master key, EMV option A (§2.1, §3; SM4 form §1.9)."""
    return diversify_key(imk, emv_diversification_data(pan, psn), cipher=cipher)


def derive_pboc_session_key(icc_mk: bytes, atc: int, *, cipher: BlockCipher = BlockCipher.TDES) -> bytes:
    """PBOC session key, 16 bytes (§3 for 3DES, §1.9 for SM4).

    3DES: ``3DES(UDK, 00×6 || ATC) || 3DES(UDK, 00×6 || ~ATC)``.
    SM4:  ``SM4(UDK, 00×6 || ATC || 00×6 || ~ATC)``.
    Both encrypt the same 16 bytes in ECB, one or two blocks.
    """
    icc_mk = require_length(icc_mk, 16, name="ICC master key")
    atc_bytes = encode_uint(atc, 2, name="ATC")
    data = bytes(6) + atc_bytes + bytes(6) + encode_uint(atc ^ 0xFFFF, 2, name="~ATC")
    if cipher is BlockCipher.TDES:
        return tdes_ecb_encrypt(icc_mk, data)
    if cipher is BlockCipher.SM4:
        return sm4_ecb_encrypt(icc_mk, data)
    raise ValueError(f"unsupported cipher {cipher!r}")


def derive_emv_common_session_key(icc_mk: bytes, atc: int) -> bytes:
    """EMV common session key (EMV Book 2 A1.3.1), 3DES, for CVNs that use it (§3: choose by CVN).

    ``R = ATC || 00×6``; left half ``3DES(MK, R with R[2] = F0)``, right half with ``R[2] = 0F``.
    """
    icc_mk = require_length(icc_mk, 16, name="ICC master key")
    atc_bytes = encode_uint(atc, 2, name="ATC")
    left = atc_bytes + b"\xf0" + bytes(5)
    right = atc_bytes + b"\x0f" + bytes(5)
    return tdes_ecb_encrypt(icc_mk, left + right)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArqcCvn01Inputs:
    """CDOL1 data of a PBOC CVN 01 ARQC, in card order (§3).

    Amounts in fen (n12), country and currency as their ISO numbers (n3, e.g. 156), the transaction
    date (n6 YYMMDD), the transaction type (n2, 00 = goods and services), the ATC as an int; TVR (5),
    unpredictable number (4), AIP (2) and CVR (4, IAD bytes 4..7, see ``cvr_from_iad``) as bytes.
    """

    amount_authorised: int  # 9F02
    amount_other: int  # 9F03
    terminal_country_code: int  # 9F1A
    tvr: bytes  # 95
    transaction_currency_code: int  # 5F2A
    transaction_date: date  # 9A
    transaction_type: int  # 9C
    unpredictable_number: bytes  # 9F37
    aip: bytes  # 82
    atc: int  # 9F36
    cvr: bytes  # from 9F10

    def __post_init__(self) -> None:
        arqc_cvn01_input(self)  # validates every field


def arqc_cvn01_input(inputs: ArqcCvn01Inputs) -> bytes:
    """ARQC input for PBOC CVN 01, 37 bytes (§3).

    ``9F02(6) 9F03(6) 9F1A(2) 95(5) 5F2A(2) 9A(3) 9C(1) 9F37(4) 82(2) 9F36(2) CVR(4)``.
    """
    day = inputs.transaction_date
    return (
        encode_bcd(inputs.amount_authorised, 6, name="amount_authorised (9F02)")
        + encode_bcd(inputs.amount_other, 6, name="amount_other (9F03)")
        + encode_bcd(inputs.terminal_country_code, 2, name="terminal_country_code (9F1A)")
        + require_length(inputs.tvr, 5, name="TVR (95)")
        + encode_bcd(inputs.transaction_currency_code, 2, name="transaction_currency_code (5F2A)")
        + encode_bcd((day.year % 100) * 10000 + day.month * 100 + day.day, 3, name="transaction_date (9A)")
        + encode_bcd(inputs.transaction_type, 1, name="transaction_type (9C)")
        + require_length(inputs.unpredictable_number, 4, name="unpredictable_number (9F37)")
        + require_length(inputs.aip, 2, name="AIP (82)")
        + encode_uint(inputs.atc, 2, name="ATC (9F36)")
        + require_length(inputs.cvr, 4, name="CVR")
    )


def _check_iad(iad: bytes) -> bytes:
    iad = bytes(iad)
    # §3: IAD = 07 | DKI | CVN | CVR(4) | algId, then issuer discretionary data.
    if len(iad) < 8:
        raise ValueError(f"PBOC IAD (9F10) must be at least 8 bytes, got {len(iad)}")
    return iad


def cvr_from_iad(iad: bytes) -> bytes:
    """The 4-byte CVR: IAD (9F10) bytes 4..7, counting from 1 (§3)."""
    return _check_iad(iad)[3:7]


def cipher_from_iad(iad: bytes) -> BlockCipher:
    """The algorithm id, IAD byte 8 counting from 1: 01 = 3DES, 04 = SM4 (§1.9, §3)."""
    alg_id = _check_iad(iad)[7]
    try:
        return _IAD_ALGORITHMS[alg_id]
    except KeyError:
        raise ValueError(f"unknown PBOC algorithm id {alg_id:#04x} in IAD") from None


def arqc_cvn17_input(*, amount_authorised: int, unpredictable_number: bytes, atc: int, iad: bytes) -> bytes:
    """ARQC input for CVN 17 (qPBOC short form), 13 bytes (§3, [code]).

    ``9F02(6) || 9F37(4) || 9F36(2) || IAD byte 5 (1)``, IAD bytes counted from 1.
    """
    return (
        encode_bcd(amount_authorised, 6, name="amount_authorised (9F02)")
        + require_length(unpredictable_number, 4, name="unpredictable_number (9F37)")
        + encode_uint(atc, 2, name="ATC (9F36)")
        + _check_iad(iad)[4:5]
    )


def generate_ac(session_key: bytes, data: bytes) -> bytes:
    """Application cryptogram (ARQC / TC / AAC), 8 bytes: ISO 9797-1 MAC algorithm 3, pad method 2 (§3)."""
    return retail_mac(session_key, data)


def verify_arqc(session_key: bytes, data: bytes, arqc: bytes) -> bool:
    """Recompute the ARQC over the rebuilt CDOL1 data and compare in constant time (§3 host step 5)."""
    return verify_mac(generate_ac(session_key, data), arqc)


def generate_arpc_method1(session_key: bytes, arqc: bytes, arc: bytes) -> bytes:
    """ARPC method 1, 8 bytes: ``3DES-ECB(SK_AC, ARQC XOR (ARC || 00×6))`` (§3).

    ``arc`` is the 2-byte authorisation response code as sent, e.g. ``b"00"`` or ``b"01"``.
    """
    session_key = require_length(session_key, 16, name="session key")
    arqc = require_length(arqc, 8, name="ARQC")
    arc = require_length(arc, 2, name="ARC")
    return tdes_ecb_encrypt(session_key, xor(arqc, arc + bytes(6)))


def issuer_authentication_data(arpc: bytes, arc: bytes) -> bytes:
    """Tag 91 value for method 1: ``ARPC(8) || ARC(2)``, sent by ``00 82 00 00 0A`` (§3)."""
    return require_length(arpc, 8, name="ARPC") + require_length(arc, 2, name="ARC")
