from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.checks import (
    IdentifierError,
    credit_code_check_char,
    luhn_check_digit,
    mask_mobile,
    mask_resident_id,
    organisation_code_check_char,
    resident_id_check_char,
    validate_credit_code,
    validate_luhn,
    validate_mobile,
    validate_resident_id,
)

TODAY = date(2025, 6, 1)
PROVINCES = [
    *("11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37"),
    *("41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"),
    *("71", "81", "82", "83"),
]
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def rule_of(excinfo: pytest.ExceptionInfo[IdentifierError]) -> str:
    return excinfo.value.rule


# --- GB 11643 resident ID (reference §8.1) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "check"),
    [("360426199101010071", "1"), ("11010519491231002X", "X")],
)
def test_reference_resident_id_examples(value: str, check: str) -> None:
    assert resident_id_check_char(value[:17]) == check
    assert validate_resident_id(value, TODAY) == value


def test_lowercase_x_and_whitespace_are_normalised() -> None:
    assert validate_resident_id(" 11010519491231002x ", TODAY) == "11010519491231002X"


def test_error_is_a_value_error_and_does_not_leak_the_value() -> None:
    with pytest.raises(ValueError, match="check_character") as excinfo:
        validate_resident_id("360426199101010072", TODAY)
    assert "360426" not in str(excinfo.value)
    assert isinstance(excinfo.value, IdentifierError)
    assert excinfo.value.kind == "resident_id"


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "length"),
        ("36042619910101007", "length"),
        ("3604261991010100711", "length"),
        ("360426910101007", "legacy_format"),
        ("36042619910101007A", "charset"),
        ("3604261991010100X1", "charset"),
        ("３60426199101010071", "charset"),  # full-width digit
        ("360426199101010072", "check_character"),
        (_with_check("99042619910101007"), "region"),
        (_with_check("00042619910101007"), "region"),
        (_with_check("36042619910230007"), "birth_date"),
        (_with_check("36042619911301007"), "birth_date"),
        (_with_check("36042618991231007"), "birth_date"),
        (_with_check("36042620250602007"), "birth_date_future"),
    ],
)
def test_resident_id_rules(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        validate_resident_id(value, TODAY)
    assert rule_of(excinfo) == rule


def test_birth_date_today_is_accepted() -> None:
    value = _with_check("360426" + TODAY.strftime("%Y%m%d") + "007")
    assert validate_resident_id(value, TODAY) == value
    # A datetime is a date subclass; comparing it with a date would raise TypeError.
    assert validate_resident_id(value, datetime(2025, 6, 1, 23, 59, tzinfo=UTC)) == value


@pytest.mark.parametrize(("first17", "rule"), [("1234", "length"), ("1234567890123456A", "charset")])
def test_check_char_input_rules(first17: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        resident_id_check_char(first17)
    assert rule_of(excinfo) == rule


valid_first17 = st.builds(
    lambda province, rest, born, seq: f"{province}{rest}{born:%Y%m%d}{seq}",
    st.sampled_from(PROVINCES),
    st.from_regex(r"[0-9]{4}", fullmatch=True),
    st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    st.from_regex(r"[0-9]{3}", fullmatch=True),
)


@given(valid_first17)
def test_any_valid_prefix_with_computed_check_validates(first17: str) -> None:
    value = first17 + resident_id_check_char(first17)
    assert validate_resident_id(value, TODAY) == value
    assert validate_resident_id(value.lower(), TODAY) == value


@given(st.from_regex(r"[0-9]{17}", fullmatch=True))
def test_any_17_digits_with_computed_check_never_fails_the_check(first17: str) -> None:
    value = first17 + resident_id_check_char(first17)
    rule = None
    try:
        assert validate_resident_id(value, TODAY) == value
    except IdentifierError as exc:
        rule = exc.rule
    assert rule in {None, "region", "birth_date", "birth_date_future"}


@given(valid_first17, st.integers(0, 17), st.sampled_from("0123456789Xx?A "))
def test_any_single_character_change_is_detected(first17: str, position: int, replacement: str) -> None:
    value = first17 + resident_id_check_char(first17)
    mutated = value[:position] + replacement + value[position + 1 :]
    if mutated.upper() == value:
        return
    with pytest.raises(IdentifierError):
        validate_resident_id(mutated, TODAY)


def test_mask_resident_id() -> None:
    assert mask_resident_id("11010519491231002x") == "110***********002X"
    assert len(mask_resident_id("11010519491231002X")) == 18
    assert mask_resident_id("1234") == "****"


# --- GB 32100 unified social credit code (reference §8.2) -------------------------------------------------


def test_reference_credit_code_example() -> None:
    assert credit_code_check_char("91110000600037341") == "L"
    assert validate_credit_code("91110000600037341L") == "91110000600037341L"
    assert validate_credit_code(" 91110000600037341l ") == "91110000600037341L"


def test_reference_organisation_code_example() -> None:
    assert organisation_code_check_char("60003734") == "1"
    assert validate_credit_code("91110000600037341L", check_organisation_code=True) == "91110000600037341L"


def test_organisation_code_special_values() -> None:
    # 11 - (S mod 11) == 10 -> "X"; == 11 -> "0" (§8.2).
    bodies = {organisation_code_check_char(f"{n:08d}") for n in range(200)}
    assert {"X", "0"} <= bodies
    with pytest.raises(IdentifierError):
        organisation_code_check_char("1234567")


def _uscc(first17: str) -> str:
    return first17 + credit_code_check_char(first17)


@pytest.mark.parametrize("authority", list("123456789ANY"))
def test_letter_authorities_are_accepted(authority: str) -> None:
    # python-stdnum wrongly rejects A/N/Y (§8.2).
    value = _uscc(f"{authority}1110000600037341")
    assert validate_credit_code(value) == value


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("91110000600037341", "length"),
        ("91110000600037341LL", "length"),
        ("91110000600037341I", "charset"),
        ("9111000060003734OL", "charset"),
        ("91110000600037341S", "charset"),
        ("Z1110000600037341L", "charset"),
        ("V1110000600037341L", "charset"),
        ("９1110000600037341L", "charset"),
        (_uscc("01110000600037341"), "authority"),
        (_uscc("B1110000600037341"), "authority"),
        (_uscc("911A0000600037341"), "region"),
        ("91110000600037341M", "check_character"),
    ],
)
def test_credit_code_rules(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        validate_credit_code(value)
    assert rule_of(excinfo) == rule


def test_organisation_code_rule_is_opt_in() -> None:
    value = _uscc("91110000600037342")  # organisation-code check character wrong
    assert validate_credit_code(value) == value
    with pytest.raises(IdentifierError) as excinfo:
        validate_credit_code(value, check_organisation_code=True)
    assert rule_of(excinfo) == "organisation_code"


valid_uscc17 = st.builds(
    lambda authority, kind, region, org: f"{authority}{kind}{region}{org}",
    st.sampled_from("123456789ANY"),
    st.sampled_from(USCC_CHARSET),
    st.from_regex(r"[0-9]{6}", fullmatch=True),
    st.text(USCC_CHARSET, min_size=9, max_size=9),
)


@given(valid_uscc17)
def test_any_valid_credit_code_prefix_with_computed_check_validates(first17: str) -> None:
    value = _uscc(first17)
    assert validate_credit_code(value) == value


@given(valid_uscc17, st.integers(0, 17), st.sampled_from(USCC_CHARSET + "IOZSV"))
def test_any_single_credit_code_change_is_detected(first17: str, position: int, replacement: str) -> None:
    value = _uscc(first17)
    mutated = value[:position] + replacement + value[position + 1 :]
    if mutated == value:
        return
    with pytest.raises(IdentifierError):
        validate_credit_code(mutated)


# --- mobile numbers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["13812345678", "+8613812345678", "+86 138 1234 5678", "0086-138-1234-5678", " 19912345678 "],
)
def test_mobile_accepted(value: str) -> None:
    assert validate_mobile(value) in {"13812345678", "19912345678"}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("", "charset"),
        ("1381234567a", "charset"),
        ("+1 13812345678", "charset"),
        ("１3812345678", "charset"),
        ("1381234567", "length"),
        ("138123456789", "length"),
        ("8613812345678", "length"),
        ("12812345678", "prefix"),
        ("23812345678", "prefix"),
    ],
)
def test_mobile_rules(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        validate_mobile(value)
    assert rule_of(excinfo) == rule


def test_mask_mobile() -> None:
    assert mask_mobile("13812345678") == "138****5678"
    assert mask_mobile("+86 138 1234 5678") == "138****5678"
    assert mask_mobile("12345") == "*****"


# --- Luhn ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "check"),
    [("7992739871", "3"), ("411111111111111", "1"), ("0", "0"), ("1", "8"), ("3104770011223344556", "8")],
)
def test_luhn_known_values(payload: str, check: str) -> None:
    assert luhn_check_digit(payload) == check
    assert validate_luhn(payload + check) == payload + check


@pytest.mark.parametrize(
    ("value", "rule"),
    [("", "length"), ("7", "length"), ("7992 739871 3", "charset"), ("79927398714", "check_character")],
)
def test_luhn_rules(value: str, rule: str) -> None:
    with pytest.raises(IdentifierError) as excinfo:
        validate_luhn(value)
    assert rule_of(excinfo) == rule


def test_luhn_check_digit_rejects_non_digits() -> None:
    with pytest.raises(IdentifierError):
        luhn_check_digit("12a")
    with pytest.raises(IdentifierError):
        luhn_check_digit("")


@given(st.from_regex(r"[0-9]{1,24}", fullmatch=True), st.data())
def test_luhn_round_trip_and_single_digit_errors_detected(payload: str, data: st.DataObject) -> None:
    value = payload + luhn_check_digit(payload)
    assert validate_luhn(value) == value
    position = data.draw(st.integers(0, len(value) - 1))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != value[position]))
    with pytest.raises(IdentifierError):
        validate_luhn(value[:position] + digit + value[position + 1 :])
