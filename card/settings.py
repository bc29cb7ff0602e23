"""The ``card`` section of the settings (``CITIZEN_CARD_*``, named in ``backend/settings.py``)."""

from __future__ import annotations

import msgspec

__all__ = ["CardSettings"]


class CardSettings(msgspec.Struct, frozen=True, kw_only=True):
    # Card numbers: issuer prefix + zero-padded sequence + Luhn check digit, ``number_length`` digits.
    # The number must stay below 2**63 (it is a bigint on blacklists), so the prefix starts with 1-8.
    issuer_prefix: str = "310477"
    number_length: int = 19
    # Issuer institution code: the QR issuer id (card.qr) and the first 4 bytes of the 8-byte
    # e-purse issuer ID (file 0x15), whose issuer diversification factor it is.
    issuer_code: int = 31047700
    validity_years: int = 10
    # Offline QR: how long one code is valid, and how long a device authorisation lasts.
    qr_validity_seconds: int = 60
    authorisation_ttl_seconds: int = 3 * 86400
    single_payment_cap_fen: int = 50_00
    default_overdraft_limit_fen: int = 0
    # Reissue after loss: the old purse's balance moves once offline taps can no longer arrive.
    settlement_window_days: int = 3

    def __post_init__(self) -> None:
        prefix = self.issuer_prefix
        if not (prefix.isascii() and prefix.isdigit() and 4 <= len(prefix) <= 10 and prefix[0] in "12345678"):
            raise ValueError("card issuer_prefix: 4 to 10 digits, starting with 1-8")
        if not 12 <= self.number_length <= 19 or self.number_length - len(prefix) < 7:
            raise ValueError("card number_length: 12..19 and at least 6 sequence digits after the prefix")
        if not 0 < self.issuer_code <= 0xFFFF_FFFF:
            raise ValueError("card issuer_code: a 32-bit positive integer")
        for name in ("qr_validity_seconds", "authorisation_ttl_seconds", "settlement_window_days"):
            if getattr(self, name) <= 0:
                raise ValueError(f"card {name} must be positive")

    @property
    def issuer_id(self) -> bytes:
        """The 8-byte e-purse issuer ID of file 0x15: the issuer code then four zero bytes."""
        return self.issuer_code.to_bytes(4, "big") + bytes(4)
