"""Offline verification of ride QR payloads at a gate or bus reader (card-protocol.md §5.1 chain).

Order of checks (each failure is a :class:`QRRejected` with one :class:`RejectReason`):

1. structure, format and field values                          -> ``malformed``
2. key id known (cf. §5.1 step 1, CA key by index)             -> ``unknown_key``
3. issuer on the whitelist (§5.1 step 5)                        -> ``unknown_issuer``
4. platform signature over the authorisation (§5.1 step 2)     -> ``bad_signature``
5. device signature over authorisation + time (§5.1 step 3)    -> ``bad_device_signature``
6. times (§5.1 step 4): generated no later than now + skew      -> ``not_yet_valid``;
   now - generated <= validity window, generated <= expiry and now <= expiry -> otherwise ``expired``
7. card, or this device authorisation, not on the blacklist
   (§5.1 step 6, §6.1; authorisations by ``payload.authorisation_id``) -> ``blacklisted``
8. amount, if given, within the single-payment cap              -> ``over_cap``

Everything after step 5 is judged on authenticated data. Steps 1-4 succeed identically for the same
authorisation bytes, so their outcome (with the decoded device key) is cached by those exact bytes:
a phone scanned again pays one signature check instead of two. The blacklist and times are checked
on every scan. Not thread-safe; use one verifier per thread or event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from card.qr import payload as _p
from card.qr.payload import Authorisation, Concession
from card.qr.text import decode_qr_text

__all__ = ["OfflineVerifier", "QRRejected", "RejectReason", "VerifiedRide"]

DEFAULT_CACHE_SIZE: Final = 4096


class RejectReason(StrEnum):
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"  # platform signature over the authorisation
    BAD_DEVICE_SIGNATURE = "bad_device_signature"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNKNOWN_KEY = "unknown_key"
    BLACKLISTED = "blacklisted"
    OVER_CAP = "over_cap"


class QRRejected(Exception):
    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedRide:
    authorisation: Authorisation
    generated_at: datetime
    amount_fen: int | None

    @property
    def card_number(self) -> str:
        return self.authorisation.card_number

    @property
    def issuer_id(self) -> int:
        return self.authorisation.issuer_id

    @property
    def concession(self) -> Concession:
        return self.authorisation.concession

    @property
    def cap_fen(self) -> int:
        return self.authorisation.cap_fen


@dataclass(frozen=True, slots=True)
class _Trusted:
    authorisation: Authorisation
    device_key: ec.EllipticCurvePublicKey
    expires: int  # epoch seconds
    authorisation_id: int  # 0 when the verifier checks no revoked authorisations


class OfflineVerifier:
    def __init__(
        self,
        platform_keys: Mapping[int, ec.EllipticCurvePublicKey],
        issuers: Iterable[int],
        blacklist: Callable[[str], bool] | Container[str],
        validity_seconds: int,
        *,
        max_clock_skew_seconds: int = 30,
        cache_size: int = DEFAULT_CACHE_SIZE,
        revoked_authorisations: Callable[[int], bool] | Container[int] | None = None,
    ) -> None:
        """``blacklist`` is a predicate on the card number or any container of card numbers;
        ``revoked_authorisations`` likewise on ``payload.authorisation_id`` (a replaced device)."""
        for key in platform_keys.values():
            if not isinstance(key.curve, ec.SECP256R1):
                raise TypeError("platform keys must be P-256")
        if validity_seconds < 0 or max_clock_skew_seconds < 0 or cache_size < 0:
            raise ValueError("validity, skew and cache size must not be negative")
        self._keys = dict(platform_keys)
        self._issuers = frozenset(issuers)
        self._is_blacklisted: Callable[[str], bool] = (
            blacklist if callable(blacklist) else blacklist.__contains__
        )
        self._is_revoked: Callable[[int], bool] | None = (
            None
            if revoked_authorisations is None
            else revoked_authorisations
            if callable(revoked_authorisations)
            else revoked_authorisations.__contains__
        )
        self._validity = validity_seconds
        self._skew = max_clock_skew_seconds
        self._cache_size = cache_size
        self._cache: dict[bytes, _Trusted] = {}

    @property
    def cached_authorisations(self) -> int:
        return len(self._cache)

    def verify_text(self, text: str, now: datetime, amount_fen: int | None = None) -> VerifiedRide:
        """:meth:`verify` for the base45 text read from the QR symbol."""
        try:
            payload = decode_qr_text(text)
        except ValueError:
            raise QRRejected(RejectReason.MALFORMED) from None
        return self.verify(payload, now, amount_fen)

    def verify(self, payload: bytes, now: datetime, amount_fen: int | None = None) -> VerifiedRide:
        """Accept a ride or raise :class:`QRRejected`. ``now`` must be timezone-aware."""
        now_s = _p.epoch_seconds(now)
        if amount_fen is not None and (type(amount_fen) is not int or amount_fen < 0):
            raise ValueError("amount_fen must be a non-negative integer")
        payload = bytes(payload)
        try:
            auth_bytes, generated, device_signature = _p.split_payload(payload)
        except _p.MalformedError:
            raise QRRejected(RejectReason.MALFORMED) from None
        trusted = self._cache.get(auth_bytes)
        if trusted is None:
            trusted = self._check_authorisation(auth_bytes)
        if not _p.verify_raw(trusted.device_key, device_signature, payload[: -_p.SIGNATURE_SIZE]):
            raise QRRejected(RejectReason.BAD_DEVICE_SIGNATURE)
        if generated > now_s + self._skew:
            raise QRRejected(RejectReason.NOT_YET_VALID)
        if now_s - generated > self._validity or generated > trusted.expires or now_s > trusted.expires:
            raise QRRejected(RejectReason.EXPIRED)
        auth = trusted.authorisation
        if self._is_blacklisted(auth.card_number) or (
            self._is_revoked is not None and self._is_revoked(trusted.authorisation_id)
        ):
            raise QRRejected(RejectReason.BLACKLISTED)
        if amount_fen is not None and amount_fen > auth.cap_fen:
            raise QRRejected(RejectReason.OVER_CAP)
        return VerifiedRide(auth, _p.from_epoch(generated), amount_fen)

    def _check_authorisation(self, auth_bytes: bytes) -> _Trusted:
        try:
            auth = _p.parse_authorisation(auth_bytes)
        except _p.MalformedError:
            raise QRRejected(RejectReason.MALFORMED) from None
        platform_key = self._keys.get(auth.key_id)
        if platform_key is None:
            raise QRRejected(RejectReason.UNKNOWN_KEY)
        if auth.issuer_id not in self._issuers:
            raise QRRejected(RejectReason.UNKNOWN_ISSUER)
        if not _p.verify_raw(platform_key, auth.signature, auth.tbs):
            raise QRRejected(RejectReason.BAD_SIGNATURE)
        try:  # signed by the platform, so only a platform bug gets here
            device_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), auth.device_public_key)
        except ValueError:
            raise QRRejected(RejectReason.MALFORMED) from None
        # The authorisation's blacklist id costs a SHA-256: only a verifier that checks revoked
        # authorisations needs it (0 otherwise).
        revocable = self._is_revoked is not None
        trusted = _Trusted(
            auth,
            device_key,
            _p.epoch_seconds(auth.expires_at),
            _p.authorisation_id(auth_bytes) if revocable else 0,
        )
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # evict the oldest entry
            self._cache[auth_bytes] = trusted
        return trusted
