"""Card numbers and application serials.

Card number = issuer prefix || zero-padded sequence || Luhn check digit (ISO/IEC 7812), of
``CardSettings.number_length`` digits. The application serial (file 0x15 bytes 10..19) is the card
number in packed BCD, left-padded with zero digits to 20 nibbles (card-protocol.md §1.1: metrodroid
prints it "minus its first digit"), so its last 8 bytes, the card diversification factor, are
distinct for distinct card numbers of one issuer.
"""

from __future__ import annotations

from card.settings import CardSettings
from identity.checks import luhn_check_digit

__all__ = ["app_serial_for", "card_number_for"]


def card_number_for(sequence: int, settings: CardSettings) -> str:
    body_length = settings.number_length - 1
    digits = body_length - len(settings.issuer_prefix)
    body = f"{settings.issuer_prefix}{sequence:0{digits}d}"
    if len(body) != body_length:
        raise OverflowError("the card number sequence has run out for this issuer prefix")
    return body + luhn_check_digit(body)


def app_serial_for(card_number: str) -> bytes:
    return bytes.fromhex(card_number.rjust(20, "0"))
