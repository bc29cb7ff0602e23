"""Check-character and format validation for Chinese identifiers (pure functions, no I/O).

References (see /work/shared/reference/card-protocol.md):

* §8.1 resident ID number, GB 11643-1999 (ISO 7064 MOD 11-2 check character);
* §8.2 unified social credit code, GB 32100-2015, and the GB 11714 organisation code inside it;
* mainland mobile numbers (11 digits, ``1[3-9]`` prefix) and Luhn (ISO/IEC 7812-1 Annex B) card numbers.

Errors are :class:`IdentifierError` (a ``ValueError``) carrying ``kind`` and a machine ``rule`` name.
Messages never contain the rejected value, so they are safe to log.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Final

__all__ = [
    "IdentifierError",
    "credit_code_check_char",
    "luhn_check_digit",
    "mask_mobile",
    "mask_resident_id",
    "organisation_code_check_char",
    "resident_id_check_char",
    "validate_credit_code",
    "validate_luhn",
    "validate_mobile",
    "validate_resident_id",
]


class IdentifierError(ValueError):
    """An identifier failed validation. ``rule`` is a stable machine-readable name."""

    def __init__(self, kind: str, rule: str, message: str) -> None:
        super().__init__(f"{kind}: {rule}: {message}")
        self.kind = kind
        self.rule = rule


# ---------------------------------------------------------------------------------------------------------
# GB 11643-1999 resident ID (§8.1)
# ---------------------------------------------------------------------------------------------------------

# W_i = 2^(18-i) mod 11 for positions 1..17 (§8.1).
_RIC_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Check character indexed by S mod 11 = 0..10 (§8.1).
_RIC_CHECK: Final = "10X98765432"
_RIC_RE: Final = re.compile(r"[0-9]{17}[0-9X]")
_DIGITS17_RE: Final = re.compile(r"[0-9]{17}")
# First two digits of the GB/T 2260 address code: the 31 mainland provinces, plus 71 Taiwan,
# 81 Hong Kong, 82 Macao (also used by HK/Macao residence permits) and 83 (Taiwan residence permits).
_PROVINCES: Final = frozenset(
    str(code)
    for code in (
        *(11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46),
        *(50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83),
    )
)
_EARLIEST_BIRTH: Final = date(1900, 1, 1)
_RIC: Final = "resident_id"


def resident_id_check_char(first17: str) -> str:
    """GB 11643 check character (``0``-``9`` or ``X``) for the first 17 digits of a resident ID."""
    if len(first17) != 17:
        raise IdentifierError(_RIC, "length", "expected 17 digits")
    if not _DIGITS17_RE.fullmatch(first17):
        raise IdentifierError(_RIC, "charset", "expected ASCII digits only")
    total = sum(w * (ord(c) - 48) for w, c in zip(_RIC_WEIGHTS, first17, strict=True))
    return _RIC_CHECK[total % 11]


def validate_resident_id(value: str, today: date) -> str:
    """Validate an 18-character resident ID; return it normalised (trimmed, ``x`` -> ``X``).

    Rules, in the order checked: ``length`` (``legacy_format`` for a 15-digit pre-1999 number,
    which has no check character), ``charset``, ``check_character``, ``region`` (province part of
    the GB/T 2260 code), ``birth_date`` (not a real date, or before 1900), ``birth_date_future``.
    ``today`` is the caller's local date; a datetime is reduced to its own date.
    """
    if isinstance(today, datetime):
        today = today.date()
    normalised = value.strip().upper()
    if len(normalised) != 18:
        if len(normalised) == 15 and normalised.isascii() and normalised.isdigit():
            raise IdentifierError(_RIC, "legacy_format", "15-digit numbers have no check character")
        raise IdentifierError(_RIC, "length", "expected 18 characters")
    if not _RIC_RE.fullmatch(normalised):
        raise IdentifierError(_RIC, "charset", "expected 17 digits then a digit or X")
    if resident_id_check_char(normalised[:17]) != normalised[17]:
        raise IdentifierError(_RIC, "check_character", "check character does not match")
    if normalised[:2] not in _PROVINCES:
        raise IdentifierError(_RIC, "region", "unknown province code")
    try:
        born = date(int(normalised[6:10]), int(normalised[10:12]), int(normalised[12:14]))
    except ValueError:
        raise IdentifierError(_RIC, "birth_date", "birth date is not a calendar date") from None
    if born < _EARLIEST_BIRTH:
        raise IdentifierError(_RIC, "birth_date", "birth date before 1900")
    if born > today:
        raise IdentifierError(_RIC, "birth_date_future", "birth date is in the future")
    return normalised


def mask_resident_id(value: str) -> str:
    """``110***********123X``: keep 3 leading and 4 trailing characters; mask all if not 18 long."""
    v = value.strip().upper()
    if len(v) != 18:
        return "*" * len(v)
    return f"{v[:3]}{'*' * 11}{v[14:]}"


# ---------------------------------------------------------------------------------------------------------
# GB 32100-2015 unified social credit code (§8.2) and GB 11714 organisation code
# ---------------------------------------------------------------------------------------------------------

# The 31-character set, values 0..30 in this order (no I, O, Z, S, V) (§8.2).
_USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE: Final = {c: i for i, c in enumerate(_USCC_CHARSET)}
# W_i = 3^(i-1) mod 31 for positions 1..17 (§8.2).
_USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_AUTHORITIES: Final = frozenset("123456789ANY")
_USCC_RE: Final = re.compile(f"[{_USCC_CHARSET}]{{18}}")
_USCC_REGION_RE: Final = re.compile(r"[0-9]{6}")
# GB 11714 organisation code: weights for the 8-character body; marked [uncertain] in §8.2.
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_RE: Final = re.compile(r"[0-9A-Z]{8}")
_USCC: Final = "credit_code"


def credit_code_check_char(first17: str) -> str:
    """GB 32100 check character: ``C18 = 31 - (sum C_i*W_i mod 31)``, 31 written ``0`` (§8.2)."""
    if len(first17) != 17:
        raise IdentifierError(_USCC, "length", "expected 17 characters")
    try:
        total = sum(w * _USCC_VALUE[c] for w, c in zip(_USCC_WEIGHTS, first17, strict=True))
    except KeyError:
        raise IdentifierError(_USCC, "charset", "character outside the GB 32100 set") from None
    return _USCC_CHARSET[(31 - total % 31) % 31]


def organisation_code_check_char(body: str) -> str:
    """GB 11714 check character for an 8-character organisation-code body (§8.2, weights [uncertain]).

    ``C9 = 11 - (sum C_i*W_i mod 11)``; 10 is written ``X`` and 11 is written ``0``. Letters count 10..35.
    """
    if not _ORG_RE.fullmatch(body):
        raise IdentifierError("organisation_code", "charset", "expected 8 characters 0-9 or A-Z")
    total = sum(w * int(c, 36) for w, c in zip(_ORG_WEIGHTS, body, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def validate_credit_code(value: str, *, check_organisation_code: bool = False) -> str:
    """Validate a unified social credit code; return it trimmed and upper-cased.

    Rules: ``length``, ``charset`` (31-character set, no I O Z S V), ``authority`` (position 1 is
    1-9, A, N or Y), ``region`` (positions 3-8 are digits, GB/T 2260), ``check_character``, and, only
    if ``check_organisation_code`` is set, ``organisation_code`` (GB 11714, positions 9-17; off by
    default because its weights are unconfirmed, §10).
    """
    normalised = value.strip().upper()
    if len(normalised) != 18:
        raise IdentifierError(_USCC, "length", "expected 18 characters")
    if not _USCC_RE.fullmatch(normalised):
        raise IdentifierError(_USCC, "charset", "character outside the GB 32100 set")
    if normalised[0] not in _USCC_AUTHORITIES:
        raise IdentifierError(_USCC, "authority", "unknown registration authority code")
    if not _USCC_REGION_RE.fullmatch(normalised[2:8]):
        raise IdentifierError(_USCC, "region", "region code must be 6 digits")
    if credit_code_check_char(normalised[:17]) != normalised[17]:
        raise IdentifierError(_USCC, "check_character", "check character does not match")
    if check_organisation_code:
        org = normalised[8:17]
        if organisation_code_check_char(org[:8]) != org[8]:
            raise IdentifierError(_USCC, "organisation_code", "GB 11714 check character does not match")
    return normalised


# ---------------------------------------------------------------------------------------------------------
# Mainland China mobile numbers
# ---------------------------------------------------------------------------------------------------------

_MOBILE_RE: Final = re.compile(r"1[3-9][0-9]{9}")
_MOBILE_SEPARATORS: Final = str.maketrans("", "", " -")
_MOB: Final = "mobile"


def validate_mobile(value: str) -> str:
    """Validate a mainland mobile number; return the bare 11 digits.

    Accepts an optional ``+86`` / ``0086`` country prefix and spaces or hyphens as separators.
    Rules: ``charset``, ``length``, ``prefix`` (must start ``13``-``19``).
    """
    compact = value.strip().translate(_MOBILE_SEPARATORS)
    for prefix in ("+86", "0086"):
        if compact.startswith(prefix):
            compact = compact[len(prefix) :]
            break
    if not (compact.isascii() and compact.isdigit()):
        raise IdentifierError(_MOB, "charset", "expected digits")
    if len(compact) != 11:
        raise IdentifierError(_MOB, "length", "expected 11 digits")
    if not _MOBILE_RE.fullmatch(compact):
        raise IdentifierError(_MOB, "prefix", "mobile numbers start with 13-19")
    return compact


def mask_mobile(value: str) -> str:
    """``138****5678``; anything that is not a valid mobile number is masked completely."""
    try:
        v = validate_mobile(value)
    except IdentifierError:
        return "*" * len(value.strip())
    return f"{v[:3]}****{v[7:]}"


# ---------------------------------------------------------------------------------------------------------
# Luhn (ISO/IEC 7812-1 Annex B), used for card numbers
# ---------------------------------------------------------------------------------------------------------

_LUHN_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_LUHN: Final = "luhn"


def _luhn_sum(digits: str, double_first: bool) -> int:
    # Walk from the right; `double_first` says whether the rightmost digit given is doubled.
    total = 0
    double = double_first
    for c in reversed(digits):
        d = ord(c) - 48
        total += _LUHN_DOUBLED[d] if double else d
        double = not double
    return total


def _require_digits(value: str) -> None:
    if not value:
        raise IdentifierError(_LUHN, "length", "expected at least one digit")
    if not (value.isascii() and value.isdigit()):
        raise IdentifierError(_LUHN, "charset", "expected ASCII digits only")


def luhn_check_digit(digits: str) -> str:
    """The Luhn check digit to append to ``digits`` (the payload, without a check digit)."""
    _require_digits(digits)
    return str((10 - _luhn_sum(digits, double_first=True) % 10) % 10)


def validate_luhn(value: str) -> str:
    """Validate a number whose last digit is a Luhn check digit; return it trimmed.

    Rules: ``length`` (fewer than 2 digits), ``charset``, ``check_character``.
    """
    v = value.strip()
    _require_digits(v)
    if len(v) < 2:
        raise IdentifierError(_LUHN, "length", "expected a payload and a check digit")
    if _luhn_sum(v, double_first=False) % 10:
        raise IdentifierError(_LUHN, "check_character", "Luhn check digit does not match")
    return v
