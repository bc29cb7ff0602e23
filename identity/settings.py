"""The ``identity`` section of the settings (``CITIZEN_IDENTITY_*``, named in ``backend/settings.py``)."""

from __future__ import annotations

import msgspec

__all__ = ["IdentitySettings"]


class IdentitySettings(msgspec.Struct, frozen=True, kw_only=True):
    # One-time codes sent by SMS.
    code_ttl: int = 300
    code_sends_per_mobile: int = 5  # per hour
    code_sends_per_address: int = 30  # per hour
    # Failed attempts (codes, passwords, TOTP): at most this many per account per window.
    max_failed_attempts: int = 5
    failure_window: int = 900
    # Failed attempts per client address per window, across accounts (credential stuffing).
    address_failure_limit: int = 50
    # Bearer sessions (absolute lifetime, seconds).
    session_ttl: int = 8 * 3600
    operator_session_ttl: int = 3600
    # argon2id (RFC 9106; OWASP minimum m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # "development": messages are recorded in Redis for `citizen sms tail` and the dev endpoint.
    sms_gateway: str = "development"
    sms_log_size: int = 200
    # The audit sealer runs this often (seconds) besides right after activity in its own process.
    audit_seal_interval: float = 1.0
