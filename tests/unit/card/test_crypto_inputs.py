"""Input checking of card.crypto: wrong lengths, ranges and types are refused, never silently coerced."""

from __future__ import annotations

from typing import Any

import pytest

import card.crypto as cc
from card.crypto import (
    BlockCipher,
    DiversificationOrder,
    LoadInputs,
    PurchaseInputs,
    QrTacInputs,
    TransactionType,
)

H = bytes.fromhex
KEY16 = H("11223344556677888877665544332211")
TERMINAL = H("001122334455")
DT7 = H("20120229135100")


def _purchase(**overrides: Any) -> PurchaseInputs:
    fields: dict[str, Any] = {
        "amount": 1,
        "terminal_no": TERMINAL,
        "terminal_txn_serial": 1,
        "transaction_time": DT7,
    }
    fields.update(overrides)
    return PurchaseInputs(**fields)


def _qr(**overrides: Any) -> QrTacInputs:
    fields: dict[str, Any] = {
        "terminal_serial": 0x01020304,
        "terminal_node": H("A1A2A3A4"),
        "terminal_time": H("B1B2B3B4"),
        "qr_medium": 0x07,
        "account": H("3104770011223344556F"),
        "validity": 0x0102,
        "generation_time": 0x11121314,
        "sam_no": H("C1C2C3C4"),
        "server_serial": 0x21222324,
        "server_time": H("D1D2D3D4"),
        "server_amount": 0x31323334,
    }
    fields.update(overrides)
    return QrTacInputs(**fields)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: cc.des_ecb_encrypt(KEY16, bytes(8)), id="des-key-16"),
        pytest.param(lambda: cc.tdes_ecb_encrypt(KEY16[:8], bytes(8)), id="tdes-key-8"),
        pytest.param(lambda: cc.tdes_ecb_encrypt(KEY16 + KEY16[:8], bytes(8)), id="tdes-key-24"),
        pytest.param(lambda: cc.tdes_ecb_encrypt(KEY16, bytes(7)), id="tdes-partial-block"),
        pytest.param(lambda: cc.tdes_ecb_encrypt(KEY16, b""), id="tdes-empty"),
        pytest.param(lambda: cc.sm4_ecb_encrypt(KEY16, bytes(8)), id="sm4-partial-block"),
        pytest.param(lambda: cc.epurse_mac(KEY16, b"x"), id="epurse-mac-16-byte-key"),
        pytest.param(lambda: cc.retail_mac(KEY16[:8], b"x"), id="retail-mac-8-byte-key"),
        pytest.param(lambda: cc.diversify_key(KEY16, bytes(16)), id="factor-16"),
        pytest.param(lambda: cc.diversify_key(KEY16[:8], bytes(8)), id="master-8"),
        pytest.param(lambda: cc.derive_card_key(KEY16, []), id="no-factors"),
        pytest.param(lambda: cc.epurse_card_factor(bytes(8)), id="serial-8"),
        pytest.param(lambda: cc.epurse_issuer_factor(bytes(4)), id="issuer-4"),
        pytest.param(lambda: cc.purchase_session_key(KEY16, bytes(3), 0, 0), id="rnd-3"),
        pytest.param(lambda: cc.purchase_session_key(KEY16, bytes(4), 0x10000, 0), id="counter-overflow"),
        pytest.param(lambda: cc.purchase_session_key(KEY16[:8], bytes(4), 0, 0), id="dpk-8"),
        pytest.param(lambda: cc.load_session_key(KEY16, bytes(4), -1), id="negative-counter"),
        pytest.param(lambda: _purchase(amount=-1), id="negative-amount"),
        pytest.param(lambda: _purchase(amount=2**32), id="amount-overflow"),
        pytest.param(lambda: _purchase(terminal_no=bytes(5)), id="terminal-5"),
        pytest.param(lambda: _purchase(transaction_time=DT7[:6]), id="dt7-6"),
        pytest.param(lambda: _purchase(txn_type=0x100), id="type-overflow"),
        pytest.param(lambda: _purchase(terminal_txn_serial=2**32), id="serial-overflow"),
        pytest.param(
            lambda: LoadInputs(balance_before=2**32, amount=0, terminal_no=TERMINAL), id="balance-overflow"
        ),
        pytest.param(
            lambda: cc.load_mac2_input(LoadInputs(balance_before=0, amount=0, terminal_no=TERMINAL), DT7[:6]),
            id="load-dt7-6",
        ),
        pytest.param(lambda: _qr(account=bytes(8)), id="qr-account-8"),
        pytest.param(lambda: _qr(server_amount=-1), id="qr-negative-amount"),
        pytest.param(lambda: cc.emv_diversification_data("62280001000A1", "01"), id="pan-not-digits"),
        pytest.param(lambda: cc.emv_diversification_data("62280001000", "01"), id="pan-11-digits"),
        pytest.param(lambda: cc.emv_diversification_data("6228000100001", "1"), id="psn-1-digit"),
        pytest.param(lambda: cc.derive_pboc_session_key(KEY16, 0x10000), id="atc-overflow"),
        pytest.param(lambda: cc.generate_arpc_method1(KEY16, bytes(4), b"00"), id="arqc-4"),
        pytest.param(lambda: cc.generate_arpc_method1(KEY16, bytes(8), b"0"), id="arc-1"),
        pytest.param(lambda: cc.cvr_from_iad(H("07000103A040")), id="iad-short"),
        pytest.param(lambda: cc.cipher_from_iad(H("0700010000000002")), id="iad-unknown-alg"),
        pytest.param(lambda: cc.parse_purchase_init_response(bytes(16)), id="purchase-init-16"),
        pytest.param(lambda: cc.parse_load_init_response(bytes(15)), id="load-init-15"),
        pytest.param(
            lambda: cc.initialize_for_purchase_command(key_index=1, amount=1, terminal_no=bytes(6), purse=3),  # type: ignore[arg-type]
            id="purse-p2-03",
        ),
    ],
)
def test_invalid_values_are_refused(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: _purchase(amount=True), id="bool-amount"),
        pytest.param(lambda: _purchase(amount=1.0), id="float-amount"),
        pytest.param(lambda: _purchase(terminal_no="001122334455"), id="str-terminal"),
        # The next three are also type errors for mypy, deliberately: the runtime must refuse them too.
        pytest.param(lambda: cc.derive_card_key(KEY16, bytes(8)), id="factors-as-bytes"),  # type: ignore[arg-type]
        pytest.param(
            lambda: cc.derive_epurse_card_key(
                KEY16,
                app_serial=bytes(10),
                issuer_id=bytes(8),
                order="issuer-first",  # type: ignore[arg-type]
            ),
            id="order-as-str",
        ),
        pytest.param(
            lambda: cc.derive_qr_tac_key(KEY16, bytes(10), order=None),  # type: ignore[arg-type]
            id="qr-order-none",
        ),
    ],
)
def test_wrong_types_are_refused(call: Any) -> None:
    with pytest.raises(TypeError):
        call()


def test_transaction_type_values() -> None:
    # §1.2
    assert [int(t) for t in TransactionType] == [0x01, 0x02, 0x05, 0x06, 0x09]


def test_epurse_factors_follow_file_0x15_layout() -> None:
    # §1.1: serial = file 0x15 bytes 10..19, card factor its last 8 bytes; issuer factor = bytes 0..3 || FF×4
    file15 = bytes(range(30))
    assert cc.epurse_card_factor(file15[10:20]) == file15[12:20]
    assert cc.epurse_issuer_factor(file15[0:8]) == file15[0:4] + H("FFFFFFFF")


def test_purchase_tac_layout() -> None:
    # §1.8: amount(4) || type(1) || terminalNo(6) || terminalTxnSerial(4) || date(4) || time(3)
    inputs = _purchase(
        amount=0x0A0B0C0D, terminal_txn_serial=0x01020304, txn_type=TransactionType.CAPP_PURCHASE
    )
    assert cc.purchase_tac_input(inputs) == H("0A0B0C0D 09 001122334455 01020304 20120229 135100")


def test_tac_key_is_xor_of_halves() -> None:
    # §1.8: key = TACkey_L XOR TACkey_R
    assert cc.tac_key(H("0102030405060708 F0F0F0F0F0F0F0F0")) == H("F1F2F3F4F5F6F7F8")


def test_qr_tac_layout_and_padding() -> None:
    data = cc.qr_tac_input(_qr())
    # §5.4 step 2, field by field.
    assert data == H(
        "88 01020304 A1A2A3A4 B1B2B3B4"  # type, termSerial, termNode, termTime
        "21222324 D1D2D3D4 31323334"  # serverSerial, serverTime, serverAmount
        "07 3104770011223344556F 0102 11121314 C1C2C3C4"  # medium, account, validity, genTime, SAM no.
    )
    # 46 bytes + "80 00" = 0x30 bytes, exactly the §1.4 padding the SAM command carries.
    assert len(data) == 46
    assert cc.iso9797_pad_method2(data) == data + H("8000")
    assert len(cc.iso9797_pad_method2(data)) == 0x30


def test_qr_tac_offline_defaults_are_zero() -> None:
    inputs = QrTacInputs(
        terminal_serial=1,
        terminal_node=bytes(4),
        terminal_time=bytes(4),
        qr_medium=0,
        account=bytes(10),
        validity=0,
        generation_time=0,
        sam_no=bytes(4),
    )
    assert cc.qr_tac_input(inputs)[9:21] == bytes(12)  # serverSerial, serverTime, serverAmount


def test_qr_tac_key_uses_account_and_issuer_factor() -> None:
    account = H("3104770011223344556F")
    key = cc.derive_qr_tac_key(KEY16, account, order=DiversificationOrder.ISSUER_FIRST)
    assert key == cc.derive_card_key(KEY16, [H("02002900FF000000"), account[2:]])
    other = cc.derive_qr_tac_key(KEY16, account, order=DiversificationOrder.CARD_FIRST)
    assert other == cc.derive_card_key(KEY16, [account[2:], H("02002900FF000000")])
    assert cc.qr_tac(key, _qr()) == cc.epurse_mac(cc.tac_key(key), cc.qr_tac_input(_qr()))


def test_emv_psn_absent_counts_as_00() -> None:
    assert cc.emv_diversification_data("6228000100001") == H("0622800010000100")
    # 19-digit PAN: rightmost 16 digits of PAN || PSN.
    assert cc.emv_diversification_data("6228480012345678901", "01") == H("8001234567890101")


def test_sm4_pboc_session_key_is_one_block() -> None:
    # §1.9: SK = SM4(UDK, 00×6 || ATC || 00×6 || ~ATC)
    key = cc.derive_pboc_session_key(KEY16, 0x0240, cipher=BlockCipher.SM4)
    assert cc.sm4_ecb_decrypt(KEY16, key) == H("000000000000 0240 000000000000 FDBF")


def test_emv_common_session_key_layout() -> None:
    # §3 (EMV Book 2 A1.3.1): R = ATC || 00…, R[2] = F0 for the left half and 0F for the right half.
    key = cc.derive_emv_common_session_key(KEY16, 0x0240)
    assert cc.tdes_ecb_decrypt(KEY16, key) == H("0240F00000000000 02400F0000000000")


def test_arqc_cvn17_input_layout() -> None:
    # §3: 9F02(6) || 9F37(4) || 9F36(2) || IAD byte 5 (counting from 1) = the second CVR byte.
    iad = H("07 00 11 03A04002 01")
    data = cc.arqc_cvn17_input(
        amount_authorised=12345, unpredictable_number=H("1E78EEBC"), atc=0x0240, iad=iad
    )
    assert data == H("000000012345 1E78EEBC 0240 A0")


def test_compound_purchase_init_command() -> None:
    # §1.7: INIT for CAPP purchase is 80 50 03 02 0B | 01 amount(4) psamTermNo(6) | 0F
    command = cc.initialize_for_purchase_command(key_index=1, amount=0, terminal_no=TERMINAL, compound=True)
    assert command == H("80 50 03 02 0B 01 00000000 001122334455 0F")
