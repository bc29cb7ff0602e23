"""Property tests for card.crypto: algebraic identities, independent oracles and both-sides flows."""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from hypothesis import assume, given
from hypothesis import strategies as st

from card.crypto import (
    BlockCipher,
    DiversificationOrder,
    LoadInputs,
    PurchaseInputs,
    TransactionType,
    derive_card_key,
    derive_epurse_card_key,
    derive_pboc_session_key,
    des_ecb_decrypt,
    des_ecb_encrypt,
    diversify_key,
    encode_dt7,
    epurse_card_factor,
    epurse_issuer_factor,
    epurse_mac,
    generate_arpc_method1,
    iso9797_pad_method2,
    load_mac1,
    load_mac2,
    load_session_key,
    purchase_mac1,
    purchase_mac1_input,
    purchase_mac2,
    purchase_session_key,
    purchase_tac,
    retail_mac,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
    tdes_ecb_decrypt,
    tdes_ecb_encrypt,
    verify_load_mac1,
    verify_mac,
)


def blob(size: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=size, max_size=size)


amounts = st.integers(min_value=0, max_value=2**32 - 1)
counters = st.integers(min_value=0, max_value=0xFFFF)
serials = st.integers(min_value=0, max_value=2**32 - 1)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))  # noqa: DTZ001


def _oracle_des_cbc_last_block(key8: bytes, padded: bytes) -> bytes:
    """Independent CBC-MAC: cryptography's own CBC mode instead of card.crypto's block loop."""
    encryptor = Cipher(TripleDES(key8 * 3), modes.CBC(bytes(8))).encryptor()
    return (encryptor.update(padded) + encryptor.finalize())[-8:]


def _flip(data: bytes, index: int, mask: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


# --- primitives -------------------------------------------------------------------------------------------


@given(key=blob(16), data=st.integers(1, 6).flatmap(lambda blocks: blob(8 * blocks)))
def test_tdes_round_trip(key: bytes, data: bytes) -> None:
    assert tdes_ecb_decrypt(key, tdes_ecb_encrypt(key, data)) == data


@given(key=blob(16), block=blob(8))
def test_tdes_is_ede_with_k1_k2_k1(key: bytes, block: bytes) -> None:
    left, right = key[:8], key[8:]
    expected = des_ecb_encrypt(left, des_ecb_decrypt(right, des_ecb_encrypt(left, block)))
    assert tdes_ecb_encrypt(key, block) == expected


@given(key=blob(8), block=blob(8))
def test_des_round_trip_and_two_key_3des_with_equal_halves_is_single_des(key: bytes, block: bytes) -> None:
    assert des_ecb_decrypt(key, des_ecb_encrypt(key, block)) == block
    assert tdes_ecb_encrypt(key + key, block) == des_ecb_encrypt(key, block)


@given(key=blob(16), block=blob(16))
def test_sm4_round_trip(key: bytes, block: bytes) -> None:
    assert sm4_ecb_decrypt(key, sm4_ecb_encrypt(key, block)) == block


# --- MAC algorithms -----------------------------------------------------------------------------------------


@given(data=st.binary(max_size=64))
def test_padding_method2_is_reversible_and_always_adds(data: bytes) -> None:
    padded = iso9797_pad_method2(data)
    assert len(padded) % 8 == 0
    assert len(data) < len(padded) <= len(data) + 8
    assert padded.rstrip(b"\x00")[:-1] == data
    assert padded.rstrip(b"\x00")[-1] == 0x80


@given(key=blob(8), data=st.binary(max_size=64))
def test_epurse_mac_matches_independent_cbc_oracle(key: bytes, data: bytes) -> None:
    assert epurse_mac(key, data) == _oracle_des_cbc_last_block(key, iso9797_pad_method2(data))[:4]


@given(
    key=blob(8), data=st.binary(min_size=1, max_size=64), index=st.integers(0, 63), mask=st.integers(1, 255)
)
def test_epurse_mac_changes_when_any_byte_changes(key: bytes, data: bytes, index: int, mask: int) -> None:
    assert epurse_mac(key, _flip(data, index, mask)) != epurse_mac(key, data)


@given(key=blob(8), data=st.binary(max_size=64))
def test_retail_mac_with_equal_halves_is_plain_des_cbc_mac(key: bytes, data: bytes) -> None:
    assert retail_mac(key + key, data) == _oracle_des_cbc_last_block(key, iso9797_pad_method2(data))


@given(key=blob(16), data=st.binary(max_size=64))
def test_retail_mac_matches_iso9797_alg3_oracle(key: bytes, data: bytes) -> None:
    last = _oracle_des_cbc_last_block(key[:8], iso9797_pad_method2(data))
    decryptor = Cipher(TripleDES(key[8:] * 3), modes.ECB()).decryptor()
    middle = decryptor.update(last) + decryptor.finalize()
    assert retail_mac(key, data) == _oracle_des_cbc_last_block(key[:8], middle)


# --- key derivation -----------------------------------------------------------------------------------------


@given(master=blob(16), factor=blob(8))
def test_3des_diversification_halves_swap_for_inverted_factor(master: bytes, factor: bytes) -> None:
    key = diversify_key(master, factor)
    inverted = diversify_key(master, bytes(b ^ 0xFF for b in factor))
    assert inverted == key[8:] + key[:8]
    assert key[:8] == tdes_ecb_encrypt(master, factor)


@given(master=blob(16), factor=blob(8))
def test_sm4_diversification_is_one_sm4_block(master: bytes, factor: bytes) -> None:
    key = diversify_key(master, factor, cipher=BlockCipher.SM4)
    assert sm4_ecb_decrypt(master, key) == factor + bytes(b ^ 0xFF for b in factor)
    assert key != diversify_key(master, factor, cipher=BlockCipher.TDES)


@given(master=blob(16), serial=blob(10), issuer=blob(8))
def test_epurse_two_level_order_is_explicit(master: bytes, serial: bytes, issuer: bytes) -> None:
    card, iss = epurse_card_factor(serial), epurse_issuer_factor(issuer)
    assume(card != iss)
    issuer_first = derive_epurse_card_key(
        master, app_serial=serial, issuer_id=issuer, order=DiversificationOrder.ISSUER_FIRST
    )
    card_first = derive_epurse_card_key(
        master, app_serial=serial, issuer_id=issuer, order=DiversificationOrder.CARD_FIRST
    )
    assert issuer_first == diversify_key(diversify_key(master, iss), card)
    assert card_first == diversify_key(diversify_key(master, card), iss)
    assert issuer_first != card_first


@given(udk=blob(16), atc=counters)
def test_pboc_session_key_halves_swap_for_inverted_atc(udk: bytes, atc: int) -> None:
    key = derive_pboc_session_key(udk, atc)
    assert derive_pboc_session_key(udk, atc ^ 0xFFFF) == key[8:] + key[:8]
    assert key[:8] == tdes_ecb_encrypt(udk, bytes(6) + atc.to_bytes(2, "big"))


@given(session_key=blob(16), arqc=blob(8), arc=blob(2))
def test_arpc_method1_decrypts_to_arqc_xor_arc(session_key: bytes, arqc: bytes, arc: bytes) -> None:
    arpc = generate_arpc_method1(session_key, arqc, arc)
    plain = tdes_ecb_decrypt(session_key, arpc)
    assert bytes(a ^ b for a, b in zip(plain, arc + bytes(6), strict=True)) == arqc


# --- both sides of a transaction ---------------------------------------------------------------------


@given(
    master=blob(16),
    serial=blob(10),
    issuer=blob(8),
    rnd=blob(4),
    counter=counters,
    balance=amounts,
    amount=amounts,
    terminal=blob(6),
    moment=moments,
)
def test_load_card_side_mac1_verifies_on_host_and_host_mac2_verifies_on_card(
    master: bytes,
    serial: bytes,
    issuer: bytes,
    rnd: bytes,
    counter: int,
    balance: int,
    amount: int,
    terminal: bytes,
    moment: datetime,
) -> None:
    # Software card: personalised with DLK derived explicitly, issuer factor first.
    card_dlk = derive_card_key(master, [epurse_issuer_factor(issuer), epurse_card_factor(serial)])
    card_inputs = LoadInputs(balance_before=balance, amount=amount, terminal_no=terminal)
    card_mac1 = load_mac1(load_session_key(card_dlk, rnd, counter), card_inputs)

    # Host: re-derives DLK from the master key and file 0x15 data.
    host_dlk = derive_epurse_card_key(
        master, app_serial=serial, issuer_id=issuer, order=DiversificationOrder.ISSUER_FIRST
    )
    host_seslk = load_session_key(host_dlk, rnd, counter)
    host_inputs = LoadInputs(balance_before=balance, amount=amount, terminal_no=terminal)
    assert verify_load_mac1(host_seslk, host_inputs, card_mac1)

    tampered = LoadInputs(balance_before=balance, amount=amount ^ 1, terminal_no=terminal)
    assert not verify_load_mac1(host_seslk, tampered, card_mac1)

    dt7 = encode_dt7(moment)
    assert verify_mac(
        load_mac2(host_seslk, host_inputs, dt7),
        load_mac2(load_session_key(card_dlk, rnd, counter), card_inputs, dt7),
    )


@given(
    dpk=blob(16),
    dtk=blob(16),
    rnd=blob(4),
    counter=counters,
    serial=serials,
    amount=amounts,
    terminal=blob(6),
    moment=moments,
    compound=st.booleans(),
)
def test_purchase_psam_and_card_agree(
    dpk: bytes,
    dtk: bytes,
    rnd: bytes,
    counter: int,
    serial: int,
    amount: int,
    terminal: bytes,
    moment: datetime,
    compound: bool,
) -> None:
    txn_type = TransactionType.CAPP_PURCHASE if compound else TransactionType.EP_PURCHASE
    inputs = PurchaseInputs(
        amount=amount,
        terminal_no=terminal,
        terminal_txn_serial=serial,
        transaction_time=encode_dt7(moment),
        txn_type=txn_type,
    )
    dt7 = encode_dt7(moment)
    sespk = purchase_session_key(dpk, rnd, counter, serial)
    # §1.3 step 2, hand-built: rnd(4) || offlineCounter(2) || last 2 bytes of the terminal serial.
    assert sespk == tdes_ecb_encrypt(dpk, rnd + counter.to_bytes(2, "big") + serial.to_bytes(4, "big")[2:])
    # §1.3 step 3: the PSAM's MAC1 equals the independent CBC oracle over the hand-built layout, and a
    # card whose offline counter differs (another SESPK) rejects it.
    mac1 = purchase_mac1(sespk, inputs)
    mac1_data = amount.to_bytes(4, "big") + bytes([txn_type]) + terminal + dt7
    assert mac1 == _oracle_des_cbc_last_block(sespk, iso9797_pad_method2(mac1_data))[:4]
    assert not verify_mac(purchase_mac1(purchase_session_key(dpk, rnd, counter ^ 1, serial), inputs), mac1)
    # MAC2 (§1.3 step 5) and TAC (§1.8) against the oracle and hand-built layouts.
    mac2_data = amount.to_bytes(4, "big")
    assert (
        purchase_mac2(sespk, amount) == _oracle_des_cbc_last_block(sespk, iso9797_pad_method2(mac2_data))[:4]
    )
    tac_data = amount.to_bytes(4, "big") + bytes([txn_type]) + terminal + serial.to_bytes(4, "big") + dt7
    xored_key = bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:], strict=True))
    tac = purchase_tac(dtk, inputs)
    assert tac == _oracle_des_cbc_last_block(xored_key, iso9797_pad_method2(tac_data))[:4]
    other_serial = PurchaseInputs(
        amount=amount,
        terminal_no=terminal,
        terminal_txn_serial=serial ^ 1,
        transaction_time=inputs.transaction_time,
        txn_type=txn_type,
    )
    assert purchase_tac(dtk, other_serial) != tac


@given(
    amount=amounts,
    terminal=blob(6),
    serial=serials,
    moment=moments,
    index=st.integers(0, 17),
    mask=st.integers(1, 255),
    sespk=blob(8),
)
def test_purchase_mac1_changes_when_any_input_byte_changes(
    amount: int, terminal: bytes, serial: int, moment: datetime, index: int, mask: int, sespk: bytes
) -> None:
    inputs = PurchaseInputs(
        amount=amount, terminal_no=terminal, terminal_txn_serial=serial, transaction_time=encode_dt7(moment)
    )
    data = _flip(purchase_mac1_input(inputs), index, mask)
    changed = PurchaseInputs(
        amount=int.from_bytes(data[0:4], "big"),
        txn_type=data[4],
        terminal_no=data[5:11],
        terminal_txn_serial=serial,
        transaction_time=data[11:18],
    )
    assert purchase_mac1(sespk, changed) != purchase_mac1(sespk, inputs)


# --- encodings ----------------------------------------------------------------------------------------------


@given(moment=moments)
def test_dt7_is_bcd_of_wall_clock(moment: datetime) -> None:
    assert encode_dt7(moment).hex() == moment.strftime("%Y%m%d%H%M%S")


@given(mac=st.binary(min_size=1, max_size=16), index=st.integers(0, 15), mask=st.integers(1, 255))
def test_verify_mac(mac: bytes, index: int, mask: int) -> None:
    assert verify_mac(mac, bytes(mac))
    assert not verify_mac(mac, _flip(mac, index, mask))
    assert not verify_mac(mac, mac[:-1])
    assert not verify_mac(b"", b"")
