"""Every published vector of card-protocol.md that concerns card.crypto, values copied from the reference.

Sections: §1.5 purchase ([PURCH]) and load ([LOAD]) tables, §3 ARQC/ARPC table ([ARQC]) and IAD example.
Two primitive known-answer tests (DES, SM4) that are not in the reference close the file.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from card.crypto import (
    ArqcCvn01Inputs,
    BlockCipher,
    LoadInputs,
    PurchaseInputs,
    PurseType,
    TransactionType,
    arqc_cvn01_input,
    cipher_from_iad,
    credit_for_load_command,
    cvr_from_iad,
    debit_for_purchase_command,
    derive_icc_master_key,
    derive_pboc_session_key,
    des_ecb_encrypt,
    emv_diversification_data,
    encode_dt7,
    generate_ac,
    generate_arpc_method1,
    initialize_for_load_command,
    initialize_for_purchase_command,
    iso9797_pad_method2,
    issuer_authentication_data,
    load_mac1,
    load_mac1_input,
    load_mac2,
    load_mac2_input,
    load_session_key,
    load_session_key_input,
    parse_load_init_response,
    parse_purchase_init_response,
    purchase_mac1,
    purchase_mac1_input,
    purchase_mac2,
    purchase_mac2_input,
    purchase_session_key,
    purchase_session_key_input,
    sm4_ecb_encrypt,
    verify_arqc,
    verify_load_mac1,
)

H = bytes.fromhex
BEIJING = timezone(timedelta(hours=8))

# --- §1.5 Purchase ([PURCH]) ------------------------------------------------------------------------
DPK = H("11223344556677888877665544332211")
PURCHASE_INIT_COMMAND = H("80 50 01 02 0B 01 00001000 001122334455")
PURCHASE_INIT_RESPONSE = H("00000000 0000 000000 01 00 11223344")
PURCHASE_PROCESS_KEY_INPUT = H("11223344 0000 0001")
SESPK = H("003238ABC57659DD")
PURCHASE_MAC1_INPUT = H("00001000 06 001122334455 20120229135100")
PURCHASE_MAC1 = H("F15CAB75")
PURCHASE_MAC2_INPUT = H("00001000")
PURCHASE_MAC2 = H("56988A13")
# §1.5: derived (not published) DEBIT consistent with the table, terminal txn serial 00000001.
PURCHASE_DEBIT_DERIVED = H("80 54 01 00 0F 00000001 20120229135100 F15CAB75")
# §1.5: the page's own DEBIT example, a copy-paste slip carrying the load example's date and MAC2.
PURCHASE_DEBIT_PUBLISHED_SLIP = H("80 54 01 00 0F 00000001 20111221214822 3A845BF0")

# --- §1.5 Load ([LOAD]) -----------------------------------------------------------------------------
DLK = H("11223344556677888877665544332211")
LOAD_INIT_COMMAND = H("80 50 00 01 0B 01 00001000 001122334455")
LOAD_INIT_RESPONSE = H("00000000 0000 02 00 11223344 2988AE5A")
LOAD_PROCESS_KEY_INPUT = H("11223344 0000 8000")
SESLK = H("9B1D924E05595603")
LOAD_MAC1_INPUT = H("00000000 00001000 01 001122334455")
LOAD_MAC1 = H("2988AE5A")
LOAD_MAC2_INPUT = H("00001000 01 001122334455 20111221 214822")
LOAD_MAC2 = H("3A845BF0")
CREDIT_FOR_LOAD = H("80 52 00 00 0B 20111221 214822 3A845BF0")
LOAD_EP_TYPE02_MAC1 = H("A5638AA0")  # §1.5 "Computed from the same inputs with type 02"
LOAD_EP_TYPE02_MAC2 = H("FDD12AF1")

# --- §3 ARQC / ARPC ([ARQC]) --------------------------------------------------------------------------
IMK_AC = H("F0C34A8124CEE0A91A0B034AA97D6EAC")
PAN, PSN = "6228000100001", "01"
Y = H("0622800010000101")
ATC = 0x0240
ARQC_INPUT = H("000000000001000000000000015600800460000156140701001E78EEBC7D00024003A04002")
ARQC = H("5D016C91005E7CC2")
ARC = H("3031")
ARPC = H("21415243527CE78F")
IAD_EXAMPLE_PREFIX = H("07 00 01 03A04002 01 0A01")  # §3 "Example 07 00 01 03A04002 01 0A01…"

PURCHASE = PurchaseInputs(
    amount=0x1000,
    terminal_no=H("001122334455"),
    terminal_txn_serial=1,
    transaction_time=H("20120229135100"),
    txn_type=TransactionType.EP_PURCHASE,
)
LOAD_ED = LoadInputs(
    balance_before=0, amount=0x1000, terminal_no=H("001122334455"), txn_type=TransactionType.ED_LOAD
)
LOAD_TIME = H("20111221214822")


# --- purchase -----------------------------------------------------------------------------------------


def test_purchase_init_command() -> None:
    command = initialize_for_purchase_command(
        key_index=1, amount=0x1000, terminal_no=H("001122334455"), purse=PurseType.EP
    )
    assert command == PURCHASE_INIT_COMMAND + H("0F")  # §1.3 step 1: Le 0F


def test_purchase_init_response_fields() -> None:
    response = parse_purchase_init_response(PURCHASE_INIT_RESPONSE)
    assert response.balance == 0
    assert response.offline_counter == 0
    assert response.overdraft_limit == 0
    assert response.key_version == 0x01
    assert response.algorithm_id == 0x00
    assert response.pseudo_random == H("11223344")


def test_purchase_process_key_input() -> None:
    response = parse_purchase_init_response(PURCHASE_INIT_RESPONSE)
    data = purchase_session_key_input(response.pseudo_random, response.offline_counter, 1)
    assert data == PURCHASE_PROCESS_KEY_INPUT


def test_purchase_sespk() -> None:
    response = parse_purchase_init_response(PURCHASE_INIT_RESPONSE)
    assert purchase_session_key(DPK, response.pseudo_random, response.offline_counter, 1) == SESPK


def test_purchase_dt7_encoding() -> None:
    assert encode_dt7(datetime(2012, 2, 29, 13, 51, 0, tzinfo=BEIJING)) == H("20120229135100")


def test_purchase_mac1_input() -> None:
    assert purchase_mac1_input(PURCHASE) == PURCHASE_MAC1_INPUT


def test_purchase_mac1() -> None:
    assert purchase_mac1(SESPK, PURCHASE) == PURCHASE_MAC1


def test_purchase_mac2() -> None:
    assert purchase_mac2_input(0x1000) == PURCHASE_MAC2_INPUT
    assert purchase_mac2(SESPK, 0x1000) == PURCHASE_MAC2


def test_purchase_debit_command_derived() -> None:
    command = debit_for_purchase_command(
        terminal_txn_serial=PURCHASE.terminal_txn_serial,
        transaction_time=PURCHASE.transaction_time,
        mac1=purchase_mac1(SESPK, PURCHASE),
    )
    assert command == PURCHASE_DEBIT_DERIVED + H("08")  # §1.3 step 4: Le 08


def test_purchase_published_debit_is_the_documented_slip() -> None:
    # §1.5: the published DEBIT carries the load example's DT7 and MAC2, so it cannot be the MAC1 of
    # the purchase inputs; it is the load MAC2 instead.
    slip_time, slip_mac = PURCHASE_DEBIT_PUBLISHED_SLIP[9:16], PURCHASE_DEBIT_PUBLISHED_SLIP[16:20]
    slip_inputs = PurchaseInputs(
        amount=0x1000, terminal_no=H("001122334455"), terminal_txn_serial=1, transaction_time=slip_time
    )
    assert purchase_mac1(SESPK, slip_inputs) != slip_mac
    assert load_mac2(SESLK, LOAD_ED, slip_time) == slip_mac


# --- load -----------------------------------------------------------------------------------------------


def test_load_init_command() -> None:
    command = initialize_for_load_command(
        key_index=1, amount=0x1000, terminal_no=H("001122334455"), purse=PurseType.ED
    )
    assert command == LOAD_INIT_COMMAND + H("10")  # §1.6: Le 10


def test_load_init_response_fields() -> None:
    response = parse_load_init_response(LOAD_INIT_RESPONSE)
    assert response.balance == 0
    assert response.online_counter == 0
    assert response.key_version == 0x02
    assert response.algorithm_id == 0x00
    assert response.pseudo_random == H("11223344")
    assert response.mac1 == LOAD_MAC1


def test_load_process_key_input_and_seslk() -> None:
    response = parse_load_init_response(LOAD_INIT_RESPONSE)
    assert load_session_key_input(response.pseudo_random, response.online_counter) == LOAD_PROCESS_KEY_INPUT
    assert load_session_key(DLK, response.pseudo_random, response.online_counter) == SESLK


def test_load_mac1() -> None:
    assert load_mac1_input(LOAD_ED) == LOAD_MAC1_INPUT
    assert load_mac1(SESLK, LOAD_ED) == LOAD_MAC1


def test_load_host_verifies_published_mac1_from_init_response() -> None:
    response = parse_load_init_response(LOAD_INIT_RESPONSE)
    seslk = load_session_key(DLK, response.pseudo_random, response.online_counter)
    inputs = LoadInputs(
        balance_before=response.balance,
        amount=0x1000,
        terminal_no=H("001122334455"),
        txn_type=TransactionType.ED_LOAD,
    )
    assert verify_load_mac1(seslk, inputs, response.mac1)


def test_load_mac2() -> None:
    assert load_mac2_input(LOAD_ED, LOAD_TIME) == LOAD_MAC2_INPUT
    assert load_mac2(SESLK, LOAD_ED, LOAD_TIME) == LOAD_MAC2


def test_load_dt7_encoding() -> None:
    assert encode_dt7(datetime(2011, 12, 21, 21, 48, 22, tzinfo=BEIJING)) == LOAD_TIME


def test_credit_for_load_command() -> None:
    command = credit_for_load_command(transaction_time=LOAD_TIME, mac2=load_mac2(SESLK, LOAD_ED, LOAD_TIME))
    assert command == CREDIT_FOR_LOAD + H("04")  # §1.6: Le 04


@pytest.mark.parametrize(
    ("txn_type", "mac1", "mac2"),
    [
        pytest.param(TransactionType.ED_LOAD, LOAD_MAC1, LOAD_MAC2, id="published-type-01"),
        pytest.param(TransactionType.EP_LOAD, LOAD_EP_TYPE02_MAC1, LOAD_EP_TYPE02_MAC2, id="ep-type-02"),
    ],
)
def test_load_macs_by_transaction_type(txn_type: TransactionType, mac1: bytes, mac2: bytes) -> None:
    inputs = LoadInputs(balance_before=0, amount=0x1000, terminal_no=H("001122334455"), txn_type=txn_type)
    assert load_mac1(SESLK, inputs) == mac1
    assert load_mac2(SESLK, inputs, LOAD_TIME) == mac2


# --- EMV ARQC / ARPC ------------------------------------------------------------------------------------

ARQC_INPUTS = ArqcCvn01Inputs(
    amount_authorised=1,
    amount_other=0,
    terminal_country_code=156,
    tvr=H("0080046000"),
    transaction_currency_code=156,
    transaction_date=date(2014, 7, 1),
    transaction_type=0,
    unpredictable_number=H("1E78EEBC"),
    aip=H("7D00"),
    atc=ATC,
    cvr=cvr_from_iad(IAD_EXAMPLE_PREFIX),
)


def _session_key() -> bytes:
    return derive_pboc_session_key(derive_icc_master_key(IMK_AC, PAN, PSN), ATC)


def test_emv_diversification_data() -> None:
    assert emv_diversification_data(PAN, PSN) == Y


def test_iad_example() -> None:
    assert cvr_from_iad(IAD_EXAMPLE_PREFIX) == H("03A04002")
    assert cipher_from_iad(IAD_EXAMPLE_PREFIX) is BlockCipher.TDES
    assert ARQC_INPUT[-4:] == cvr_from_iad(IAD_EXAMPLE_PREFIX)


def test_arqc_input_layout() -> None:
    assert arqc_cvn01_input(ARQC_INPUTS) == ARQC_INPUT


def test_arqc() -> None:
    assert generate_ac(_session_key(), ARQC_INPUT) == ARQC
    assert verify_arqc(_session_key(), arqc_cvn01_input(ARQC_INPUTS), ARQC)


def test_arqc_is_not_full_3des_cbc() -> None:
    # §3: "Full 3DES-CBC does not match the vector; the retail MAC does."
    key = _session_key()
    encryptor = Cipher(TripleDES(key + key[:8]), modes.CBC(bytes(8))).encryptor()
    full_3des = (encryptor.update(iso9797_pad_method2(ARQC_INPUT)) + encryptor.finalize())[-8:]
    assert full_3des != ARQC


def test_arpc_method1() -> None:
    assert ARC == b"01"
    arpc = generate_arpc_method1(_session_key(), ARQC, ARC)
    assert arpc == ARPC
    assert issuer_authentication_data(arpc, ARC) == ARPC + ARC


# --- primitive known-answer tests (not from the reference) ------------------------------------------------


def test_des_known_answer() -> None:
    # Classic single-DES example (key 133457799BBCDFF1); a second check that K|K|K is single DES.
    assert des_ecb_encrypt(H("133457799BBCDFF1"), H("0123456789ABCDEF")) == H("85E813540F0AB405")


def test_sm4_known_answer() -> None:
    # GB/T 32907-2016 Appendix A, example 1.
    key = H("0123456789ABCDEFFEDCBA9876543210")
    assert sm4_ecb_encrypt(key, key) == H("681EDF34D206965E86B3E94F536E4246")
