"""Published vectors and invariants: TOTP/HOTP, AES-GCM at rest, blind index, audit digest."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.audit import canonical_digest
from identity.crypto import BlindIndex, DecryptionError, PiiCipher
from identity.totp import hotp, matching_step, totp

# RFC 6238 Appendix B: seeds are the ASCII strings below, 8 digits.
SEED_SHA1 = b"12345678901234567890"
SEED_SHA256 = b"12345678901234567890123456789012"
SEED_SHA512 = b"1234567890123456789012345678901234567890123456789012345678901234"
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]
# RFC 4226 Appendix D: HOTP values for counters 0..9 with the SHA-1 seed, 6 digits.
RFC4226 = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]


@pytest.mark.parametrize(("time", "sha1", "sha256", "sha512"), RFC6238)
def test_totp_rfc6238_vectors(time: int, sha1: str, sha256: str, sha512: str) -> None:
    assert totp(SEED_SHA1, time, digits=8, algorithm="sha1") == sha1
    assert totp(SEED_SHA256, time, digits=8, algorithm="sha256") == sha256
    assert totp(SEED_SHA512, time, digits=8, algorithm="sha512") == sha512


@pytest.mark.parametrize(("counter", "expected"), list(enumerate(RFC4226)))
def test_hotp_rfc4226_vectors(counter: int, expected: str) -> None:
    assert hotp(SEED_SHA1, counter) == expected


def test_totp_accepts_one_step_of_clock_drift_only() -> None:
    now = 1_700_000_000.0
    code = totp(SEED_SHA1, now)
    assert matching_step(SEED_SHA1, code, now) == int(now // 30)
    assert matching_step(SEED_SHA1, code, now + 30) == int(now // 30)
    assert matching_step(SEED_SHA1, code, now + 90) is None
    assert matching_step(SEED_SHA1, "000000" if code != "000000" else "111111", now) is None


@given(st.text(max_size=200), st.text(min_size=1, max_size=40))
def test_cipher_round_trip_and_aad_binding(plaintext: str, aad: str) -> None:
    cipher = PiiCipher(bytes(range(32)))
    blob = cipher.encrypt(plaintext, aad)
    assert cipher.decrypt(blob, aad) == plaintext
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob, aad + "x")  # another row or column


def test_cipher_rotation_keeps_old_ciphertexts_readable() -> None:
    old, new = os.urandom(32), os.urandom(32)
    blob = PiiCipher(old).encrypt("44030419900307123X", "id_number:a")
    rotated = PiiCipher(new, previous=[old])
    assert rotated.decrypt(blob, "id_number:a") == "44030419900307123X"
    assert rotated.needs_rotation(blob)
    assert not rotated.needs_rotation(rotated.encrypt("x", "y"))
    with pytest.raises(DecryptionError):
        PiiCipher(new).decrypt(blob, "id_number:a")  # the old key is unknown
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        rotated.decrypt(bytes(tampered), "id_number:a")


def test_ciphertexts_are_randomised_and_index_is_deterministic() -> None:
    cipher, index = PiiCipher(os.urandom(32)), BlindIndex(os.urandom(32))
    assert cipher.encrypt("13800138000", "m") != cipher.encrypt("13800138000", "m")
    assert index.mobile("13800138000") == index.mobile("13800138000")
    assert index.mobile("13800138000") != index("id_number", "13800138000")  # purposes are separated
    assert index.mobile("13800138000") != BlindIndex(os.urandom(32)).mobile("13800138000")


_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # what JSON text can hold
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(_chars),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(_chars, max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(_chars, max_size=8), _json, max_size=4))
def test_audit_digest_ignores_key_order_but_not_content(details: dict[str, object]) -> None:
    at = dt.datetime(2025, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)

    def digest(
        *, occurred_at: dt.datetime = at, outcome: str = "success", details: dict[str, object] = details
    ) -> bytes:
        return canonical_digest(
            occurred_at=occurred_at,
            actor_kind="person",
            actor_id="a",
            acting_for=None,
            action="x",
            target_kind=None,
            target_id=None,
            outcome=outcome,
            client_address="1.2.3.4",
            client_id=None,
            request_id=None,
            details=details,
        )

    reordered = dict(reversed(list(details.items())))
    assert digest() == digest(details=reordered)
    assert digest() != digest(outcome="failure")
    same_instant = at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert digest() == digest(occurred_at=same_instant)
