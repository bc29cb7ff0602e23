from __future__ import annotations

import struct
from collections.abc import Callable, Container
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from card.qr import (
    AUTHORISATION_SIZE,
    PAYLOAD_SIZE,
    Concession,
    OfflineVerifier,
    QRRejected,
    RejectReason,
    build_qr_payload,
    decode_qr_text,
    encode_authorisation,
    encode_qr_text,
    parse_authorisation,
    sign_authorisation,
)
from card.qr import payload as payload_module
from card.qr.verifier import DEFAULT_CACHE_SIZE
from identity.checks import luhn_check_digit

R = RejectReason
NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=3)
CARD = "310477001122334455" + luhn_check_digit("310477001122334455")
ISSUER = 31047700
KEY_ID = 7
CAP = 20_00  # 20.00 CNY
VALIDITY = 60

PLATFORM_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_PLATFORM_KEY = ec.generate_private_key(ec.SECP256R1())
DEVICE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_DEVICE_KEY = ec.generate_private_key(ec.SECP256R1())


def authorisation(
    platform_key: ec.EllipticCurvePrivateKey = PLATFORM_KEY,
    *,
    key_id: int = KEY_ID,
    issuer_id: int = ISSUER,
    card_number: str = CARD,
    expires_at: datetime = EXPIRES,
    cap_fen: int = CAP,
) -> bytes:
    return sign_authorisation(
        platform_key,
        key_id=key_id,
        issuer_id=issuer_id,
        card_number=card_number,
        concession=Concession.STUDENT,
        cap_fen=cap_fen,
        expires_at=expires_at,
        device_public_key=DEVICE_KEY.public_key(),
    )


AUTH = authorisation()


def qr(auth: bytes = AUTH, generated_at: datetime = NOW - timedelta(seconds=5)) -> bytes:
    return build_qr_payload(auth, DEVICE_KEY, generated_at)


def verifier(
    blacklist: Callable[[str], bool] | Container[str] = frozenset(), *, cache_size: int = DEFAULT_CACHE_SIZE
) -> OfflineVerifier:
    return OfflineVerifier(
        {KEY_ID: PLATFORM_KEY.public_key(), KEY_ID + 1: OTHER_PLATFORM_KEY.public_key()},
        issuers={ISSUER, 1},
        blacklist=blacklist,
        validity_seconds=VALIDITY,
        cache_size=cache_size,
    )


def rejected(payload: bytes, amount_fen: int | None = None, v: OfflineVerifier | None = None) -> RejectReason:
    with pytest.raises(QRRejected) as excinfo:
        (v or verifier()).verify(payload, NOW, amount_fen)
    return excinfo.value.reason


def signed_tbs(tbs: bytes) -> bytes:
    return tbs + payload_module.sign_raw(PLATFORM_KEY, tbs)


def raw_payload(auth: bytes, generated_at: datetime = NOW) -> bytes:
    # build_qr_payload refuses malformed authorisations, so sign the device part by hand.
    signed = auth + payload_module.epoch_seconds(generated_at).to_bytes(4, "big")
    return signed + payload_module.sign_raw(DEVICE_KEY, signed)


# --- good path -------------------------------------------------------------------------------------------


def test_sizes() -> None:
    assert len(AUTH) == AUTHORISATION_SIZE == 123
    payload = qr()
    assert len(payload) == PAYLOAD_SIZE == 191
    assert len(encode_qr_text(payload)) == 287


def test_good_payload_is_accepted() -> None:
    ride = verifier().verify(qr(), NOW, amount_fen=CAP)
    assert ride.card_number == CARD
    assert ride.issuer_id == ISSUER
    assert ride.concession is Concession.STUDENT
    assert ride.cap_fen == CAP
    assert ride.amount_fen == CAP
    assert ride.generated_at == NOW - timedelta(seconds=5)
    assert ride.authorisation.key_id == KEY_ID
    assert ride.authorisation.expires_at == EXPIRES


def test_text_form_round_trip_and_verify_text() -> None:
    payload = qr()
    text = encode_qr_text(payload)
    assert decode_qr_text(text) == payload
    assert verifier().verify_text(text, NOW).card_number == CARD
    with pytest.raises(QRRejected) as excinfo:
        verifier().verify_text(text.lower(), NOW)
    assert excinfo.value.reason == R.MALFORMED


def test_parse_authorisation() -> None:
    auth = parse_authorisation(AUTH)
    assert auth.card_number == CARD
    assert auth.cap_fen == CAP
    assert auth.expires_at == EXPIRES


def test_other_timezones_are_accepted() -> None:
    beijing = timezone(timedelta(hours=8))
    payload = build_qr_payload(AUTH, DEVICE_KEY, NOW.astimezone(beijing))
    assert verifier().verify(payload, NOW.astimezone(beijing)).generated_at == NOW


def test_cache_saves_the_platform_signature_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = payload_module.verify_raw

    def counting(*args: object) -> bool:
        nonlocal calls
        calls += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(payload_module, "verify_raw", counting)
    v = verifier()
    v.verify(qr(generated_at=NOW - timedelta(seconds=20)), NOW)
    assert calls == 2
    v.verify(qr(generated_at=NOW - timedelta(seconds=2)), NOW)
    assert calls == 3
    assert v.cached_authorisations == 1


def test_cache_is_bounded_and_can_be_disabled() -> None:
    v = verifier(cache_size=1)
    v.verify(qr(), NOW)
    v.verify(qr(authorisation(card_number="6" + luhn_check_digit("6"))), NOW)
    assert v.cached_authorisations == 1
    v0 = verifier(cache_size=0)
    v0.verify(qr(), NOW)
    assert v0.cached_authorisations == 0


def test_blacklist_is_checked_on_every_scan_even_when_cached() -> None:
    listed: set[str] = set()
    v = verifier(listed)
    v.verify(qr(), NOW)
    listed.add(CARD)
    assert rejected(qr(), v=v) == R.BLACKLISTED


def test_blacklist_may_be_a_predicate() -> None:
    assert rejected(qr(), v=verifier(lambda card: card.startswith("3104"))) == R.BLACKLISTED
    verifier(lambda card: False).verify(qr(), NOW)


# --- each reject reason -----------------------------------------------------------------------------------


def test_malformed() -> None:
    payload = qr()
    assert rejected(payload[:-1]) == R.MALFORMED
    assert rejected(payload + b"\x00") == R.MALFORMED
    assert rejected(b"") == R.MALFORMED
    assert rejected(b"\x02" + payload[1:]) == R.MALFORMED


@pytest.mark.parametrize(
    ("offset", "replacement"),
    [
        (7, b"\x12\x3a"),  # non-BCD nibble in the card number
        (7, b"\xff" * 10),  # empty card number
        (7, b"\xff\x12"),  # F padding at the front
        (7, b"\x1f\x23"),  # F padding before a digit
        (17, b"\x00"),  # concession 00 is not issued
        (17, b"\x06"),
        (26, b"\x04"),  # not a compressed point
    ],
)
def test_malformed_fields_even_when_signed(offset: int, replacement: bytes) -> None:
    tbs = bytearray(AUTH[:59])
    tbs[offset : offset + len(replacement)] = replacement
    assert rejected(raw_payload(signed_tbs(bytes(tbs)))) == R.MALFORMED


def test_device_point_not_on_the_curve_is_malformed() -> None:
    tbs = bytearray(AUTH[:59])
    for x in range(1, 100):  # about half of all x coordinates have no point
        tbs[27:59] = x.to_bytes(32, "big")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(tbs[26:59]))
        except ValueError:
            break
    assert rejected(raw_payload(signed_tbs(bytes(tbs)))) == R.MALFORMED


def test_key_rotation_second_platform_key_is_accepted() -> None:
    verifier().verify(qr(authorisation(OTHER_PLATFORM_KEY, key_id=KEY_ID + 1)), NOW)


def test_unknown_key_and_issuer() -> None:
    assert rejected(qr(authorisation(key_id=99))) == R.UNKNOWN_KEY
    assert rejected(qr(authorisation(issuer_id=ISSUER + 1))) == R.UNKNOWN_ISSUER


def test_bad_platform_signature() -> None:
    assert rejected(qr(authorisation(OTHER_PLATFORM_KEY))) == R.BAD_SIGNATURE
    assert rejected(qr(authorisation(key_id=KEY_ID + 1))) == R.BAD_SIGNATURE
    tampered = bytearray(AUTH)
    tampered[21] ^= 0x01  # raise the cap by one fen
    assert rejected(raw_payload(bytes(tampered))) == R.BAD_SIGNATURE


def test_bad_device_signature() -> None:
    payload = qr()
    signed = payload[:-64]
    assert rejected(signed + payload_module.sign_raw(OTHER_DEVICE_KEY, signed)) == R.BAD_DEVICE_SIGNATURE
    assert rejected(payload[:-1] + bytes([payload[-1] ^ 1])) == R.BAD_DEVICE_SIGNATURE
    assert rejected(signed + bytes(64)) == R.BAD_DEVICE_SIGNATURE


def test_high_s_twin_signature_is_rejected() -> None:
    payload = qr()
    r, s = payload[-64:-32], int.from_bytes(payload[-32:], "big")
    twin = payload[:-64] + r + (payload_module._N - s).to_bytes(32, "big")
    assert rejected(twin) == R.BAD_DEVICE_SIGNATURE


def test_times() -> None:
    skew = 30
    assert rejected(qr(generated_at=NOW + timedelta(seconds=skew + 1))) == R.NOT_YET_VALID
    verifier().verify(qr(generated_at=NOW + timedelta(seconds=skew)), NOW)
    verifier().verify(qr(generated_at=NOW - timedelta(seconds=VALIDITY)), NOW)
    assert rejected(qr(generated_at=NOW - timedelta(seconds=VALIDITY + 1))) == R.EXPIRED
    assert rejected(qr(authorisation(expires_at=NOW - timedelta(seconds=1)), NOW - timedelta(seconds=2))) == (
        R.EXPIRED
    )
    assert rejected(qr(authorisation(expires_at=NOW - timedelta(seconds=1)), NOW)) == R.EXPIRED
    verifier().verify(qr(authorisation(expires_at=NOW), NOW - timedelta(seconds=1)), NOW)


def test_over_cap() -> None:
    assert rejected(qr(), amount_fen=CAP + 1) == R.OVER_CAP
    assert rejected(qr(authorisation(cap_fen=0)), amount_fen=1) == R.OVER_CAP
    verifier().verify(qr(authorisation(cap_fen=0)), NOW, amount_fen=0)


# --- programmer errors are ValueError/TypeError, not rejections --------------------------------------------


def test_naive_datetimes_and_bad_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verifier().verify(qr(), NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_qr_payload(AUTH, DEVICE_KEY, NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="amount_fen"):
        verifier().verify(qr(), NOW, amount_fen=-1)


@pytest.mark.parametrize(
    "change",
    [
        {"card_number": "12345678901"},  # fails Luhn
        {"card_number": "0" * 20 + luhn_check_digit("0" * 20)},  # 21 digits
        {"card_number": ""},
        {"key_id": 65536},
        {"issuer_id": -1},
        {"cap_fen": 2**32},
        {"cap_fen": True},
        {"expires_at": datetime(2200, 1, 1, tzinfo=UTC)},
        {"expires_at": datetime(2025, 1, 1)},  # noqa: DTZ001 - naive on purpose
    ],
)
def test_encode_authorisation_validates(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "key_id": KEY_ID,
        "issuer_id": ISSUER,
        "card_number": CARD,
        "concession": Concession.STANDARD,
        "cap_fen": CAP,
        "expires_at": EXPIRES,
        "device_public_key": DEVICE_KEY.public_key(),
    }
    fields.update(change)
    with pytest.raises(ValueError):
        encode_authorisation(**fields)  # type: ignore[arg-type]


def test_keys_must_be_p256() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(TypeError):
        authorisation(p384)
    with pytest.raises(TypeError):
        OfflineVerifier({1: p384.public_key()}, [], frozenset(), 60)


def test_build_refuses_a_foreign_device_key() -> None:
    with pytest.raises(ValueError, match="does not match"):
        build_qr_payload(AUTH, OTHER_DEVICE_KEY, NOW)


# --- property: any single-byte change is rejected --------------------------------------------------------

PAYLOAD = qr()
WARM = verifier()
WARM.verify(PAYLOAD, NOW)  # the genuine authorisation is cached; mutations must still fail


@given(st.integers(0, PAYLOAD_SIZE - 1), st.integers(1, 255))
def test_any_single_byte_mutation_is_rejected(position: int, xor: int) -> None:
    mutated = bytearray(PAYLOAD)
    mutated[position] ^= xor
    with pytest.raises(QRRejected):
        WARM.verify(bytes(mutated), NOW)
    with pytest.raises(QRRejected):
        verifier().verify(bytes(mutated), NOW)


@given(st.binary(min_size=PAYLOAD_SIZE, max_size=PAYLOAD_SIZE))
def test_random_payloads_are_rejected(data: bytes) -> None:
    with pytest.raises(QRRejected):
        WARM.verify(data, NOW)


def test_layout_offsets_match_the_documented_table() -> None:
    fmt, key_id, issuer, bcd, concession, cap, expires = struct.unpack(">BHI10sBII", AUTH[:26])
    assert (fmt, key_id, issuer, concession, cap) == (1, KEY_ID, ISSUER, 2, CAP)
    assert bcd.hex().upper() == CARD.ljust(20, "F")
    assert expires == payload_module.epoch_seconds(EXPIRES)
    assert AUTH[26] in (2, 3)
    assert PAYLOAD[123:127] == payload_module.epoch_seconds(NOW - timedelta(seconds=5)).to_bytes(4, "big")


def test_every_position_flipped_is_rejected() -> None:
    for position in range(PAYLOAD_SIZE):
        mutated = bytearray(PAYLOAD)
        mutated[position] ^= 0x01
        with pytest.raises(QRRejected):
            WARM.verify(bytes(mutated), NOW)


# --- base45 (RFC 9285) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ],
)
def test_base45_rfc9285_examples(raw: bytes, text: str) -> None:
    assert encode_qr_text(raw) == text
    assert decode_qr_text(text) == raw


@pytest.mark.parametrize("text", ["GGW", "V5", "A", "abc", "BB8é", "BB\x00"])
def test_base45_rejects_invalid_text(text: str) -> None:
    with pytest.raises(ValueError, match="base45"):
        decode_qr_text(text)


@given(st.binary(max_size=300))
def test_base45_round_trip(data: bytes) -> None:
    text = encode_qr_text(data)
    assert len(text) == len(data) // 2 * 3 + len(data) % 2 * 2
    assert decode_qr_text(text) == data


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:a\u00e9", max_size=40))
def test_base45_decoding_is_strict_and_canonical(text: str) -> None:
    try:
        data = decode_qr_text(text)
    except ValueError:
        return
    assert encode_qr_text(data) == text
