"""Input checks of the persons API, each failing as a 422 that names the field and the rule."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from identity.checks import IdentifierError, validate_credit_code, validate_mobile, validate_resident_id
from identity.errors import InvalidField, invalid_identifier

__all__ = ["code_format", "credit_code", "id_number", "mobile", "person_name"]

_CODE = re.compile(r"^[0-9]{6}$")


def mobile(value: str, field: str = "mobile") -> str:
    try:
        return validate_mobile(value)
    except IdentifierError as exc:
        raise invalid_identifier(field, exc) from None


def id_number(value: str, today: dt.date, field: str = "id_number") -> str:
    try:
        return validate_resident_id(value, today)
    except IdentifierError as exc:
        raise invalid_identifier(field, exc) from None


def credit_code(value: str, field: str = "credit_code") -> str:
    try:
        return validate_credit_code(value)
    except IdentifierError as exc:
        raise invalid_identifier(field, exc) from None


def code_format(value: str, field: str = "code") -> str:
    code = value.strip()
    if not _CODE.match(code):
        raise InvalidField(field, "format", "expected 6 digits")
    return code


def person_name(value: str, field: str = "name") -> str:
    name = unicodedata.normalize("NFC", value.strip())
    if not 1 <= len(name) <= 60:
        raise InvalidField(field, "length", "1 to 60 characters")
    if any(unicodedata.category(c)[0] in "CN" for c in name):
        raise InvalidField(field, "charset", "letters, spaces and the middle dot only")
    return name
