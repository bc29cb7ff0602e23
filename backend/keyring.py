"""Named secret keys, one per purpose (warehouse's per-purpose secrets).

A key comes from ``CITIZEN_KEY_<NAME>`` (URL-safe base64 of 32 bytes). Outside production, a key
that is not set is generated once and kept under ``<data_dir>/keys/``, so that every worker and
every restart sees the same key; in production a missing key stops start-up. There is never a
random fallback that lives only in one process.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from backend.settings import Settings, SettingsError

__all__ = ["KEY_NAMES", "Keyring", "key_variable"]

# Every purpose that has a key. Domains are handed the bytes; they never read files or env.
KEY_NAMES: tuple[str, ...] = (
    "pii-encryption",  # AES-256-GCM over ID and mobile numbers at rest (identity)
    "pii-index",  # HMAC-SHA256 blind index for look-ups by ID or mobile number (identity)
    "otp",  # HMAC over one-time codes kept in Redis (identity)
    "card-kek",  # key-encryption key over the card issuer master keys (card)
    "oidc-kek",  # wraps OpenID provider signing keys at rest (identity.oidc)
    "session",  # SSO cookie and CSRF token MACs (identity)
    "simulator",  # shared secrets of the development upstream simulators (integrations)
    "connectors",  # HMAC of the connectors' Redis cache keys and upstream Idempotency-Keys (integrations)
    "settlement",  # HMAC-SHA256 signature of the operators' settlement files (payments)
)
_KEY_BYTES = 32


def key_variable(name: str) -> str:
    """The environment variable of a key purpose: ``pii-index`` → ``CITIZEN_KEY_PII_INDEX``."""
    return "CITIZEN_KEY_" + name.upper().replace("-", "_")


class Keyring:
    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = dict(keys)

    def __repr__(self) -> str:
        return f"Keyring({sorted(self._keys)})"

    def get(self, name: str) -> bytes:
        try:
            return self._keys[name]
        except KeyError:
            raise KeyError(f"no key named {name!r} in the keyring") from None

    @classmethod
    def load(
        cls,
        settings: Settings,
        names: Iterable[str] = KEY_NAMES,
        environ: Mapping[str, str] | None = None,
    ) -> Keyring:
        env = os.environ if environ is None else environ
        keys: dict[str, bytes] = {}
        for name in names:
            variable = key_variable(name)
            raw = env.get(variable)
            if raw:
                keys[name] = _decode(variable, raw)
            elif settings.is_development:
                keys[name] = _dev_key(Path(settings.data_dir) / "keys", name)
            else:
                raise SettingsError(f"{variable}: required in production (URL-safe base64 of 32 bytes)")
        return cls(keys)


def _decode(variable: str, raw: str) -> bytes:
    try:
        value = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        raise SettingsError(f"{variable}: not URL-safe base64") from None
    if len(value) != _KEY_BYTES:
        raise SettingsError(f"{variable}: must decode to {_KEY_BYTES} bytes, got {len(value)}")
    return value


def _dev_key(directory: Path, name: str) -> bytes:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{name}.key"
    try:
        # O_EXCL: of two processes starting together, exactly one creates the key; the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):
            data = path.read_bytes()
            if len(data) == _KEY_BYTES:
                return data
            os.sched_yield()  # the creator has not finished its write yet
        raise SettingsError(f"{path}: corrupt development key") from None
    value = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value
