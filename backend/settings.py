"""Settings: one frozen tree, read from ``CITIZEN_*`` environment variables once at start-up.

Every variable is named once, in ``_VARIABLES`` below (warehouse's ``maybe_set`` pattern), with
its parser and default. Nothing here runs at import time: ``Settings.from_env()`` is called by the
CLI or the ASGI factory, and tests build their own ``Settings``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from card.settings import CardSettings
from card.terminal.settings import TerminalSettings
from identity.oidc.settings import OidcSettings
from identity.settings import IdentitySettings
from integrations.settings import IntegrationsSettings, integration_variables
from payments.settings import PaymentsSettings

__all__ = [
    "DatabaseSettings",
    "Environment",
    "HttpSettings",
    "RedisSettings",
    "Secret",
    "Settings",
    "SettingsError",
]


class SettingsError(ValueError):
    """A ``CITIZEN_*`` variable is missing or malformed; the message names the variable."""


class Secret:
    """A string whose ``repr`` and ``str`` never show its value (starlette's ``Secret``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    # None: start the embedded PostgreSQL under the data directory (backend.embedded).
    url: Secret | None = None
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout: float = 3.0
    command_timeout: float = 10.0


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    # None: start the embedded Redis under the data directory (backend.embedded).
    url: Secret | None = None
    socket_timeout: float = 3.0


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Seconds SIGTERM waits for in-flight requests before the worker exits.
    shutdown_grace: float = 15.0
    # Address the app is reached at, used in links and as the OpenID issuer.
    public_url: str = ""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    environment: Environment = Environment.PRODUCTION
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    log_json: bool = True
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    identity: IdentitySettings = msgspec.field(default_factory=IdentitySettings)
    oidc: OidcSettings = msgspec.field(default_factory=OidcSettings)
    card: CardSettings = msgspec.field(default_factory=CardSettings)
    integrations: IntegrationsSettings = msgspec.field(default_factory=IntegrationsSettings)
    terminal: TerminalSettings = msgspec.field(default_factory=TerminalSettings)
    payments: PaymentsSettings = msgspec.field(default_factory=PaymentsSettings)

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    @property
    def public_url(self) -> str:
        return self.http.public_url or f"http://{self.http.host}:{self.http.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default ``os.environ``), naming any bad variable."""
        env = os.environ if environ is None else environ
        sections: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for var in _VARIABLES:
            raw = env.get(var.name)
            if raw is None or raw == "":
                continue
            try:
                value = var.parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{var.name}: {exc}") from None
            if var.section:
                sections.setdefault(var.section, {})[var.field] = value
            else:
                top[var.field] = value
        try:
            return cls(
                database=DatabaseSettings(**sections.get("database", {})),
                redis=RedisSettings(**sections.get("redis", {})),
                http=HttpSettings(**sections.get("http", {})),
                identity=IdentitySettings(**sections.get("identity", {})),
                oidc=OidcSettings(**sections.get("oidc", {})),
                card=CardSettings(**sections.get("card", {})),
                integrations=IntegrationsSettings.from_flat(sections.get("integrations", {})),
                terminal=TerminalSettings(**sections.get("terminal", {})),
                payments=PaymentsSettings(**sections.get("payments", {})),
                **top,
            )
        except ValueError as exc:  # a section's own checks (e.g. oidc.code_ttl at most 60 s)
            raise SettingsError(str(exc)) from None
        except TypeError as exc:  # pragma: no cover - the table and the Structs disagree
            raise SettingsError(str(exc)) from None

    def replace(self, **changes: Any) -> Settings:
        return msgspec.structs.replace(self, **changes)


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _url(*schemes: str) -> Callable[[str], Secret]:
    def parse(raw: str) -> Secret:
        scheme = raw.split("://", 1)[0] if "://" in raw else ""
        if scheme not in schemes:
            raise ValueError(f"expected a URL starting with one of {', '.join(s + '://' for s in schemes)}")
        return Secret(raw)

    return parse


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"unknown log level {raw!r}")
    return level


def _environment(raw: str) -> Environment:
    try:
        return Environment(raw.strip().lower())
    except ValueError:
        raise ValueError(f"expected one of {', '.join(e.value for e in Environment)}") from None


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    section: str
    field: str
    parse: Callable[[str], Any]


# The one place where every environment variable is named.
_VARIABLES: tuple[_Variable, ...] = (
    _Variable("CITIZEN_ENV", "", "environment", _environment),
    _Variable("CITIZEN_DATA_DIR", "", "data_dir", Path),
    _Variable("CITIZEN_LOG_LEVEL", "", "log_level", _log_level),
    _Variable("CITIZEN_LOG_JSON", "", "log_json", _bool),
    _Variable("CITIZEN_DATABASE_URL", "database", "url", _url("postgresql", "postgres")),
    _Variable("CITIZEN_DATABASE_POOL_MIN", "database", "pool_min", _int(0, 100)),
    _Variable("CITIZEN_DATABASE_POOL_MAX", "database", "pool_max", _int(1, 500)),
    _Variable("CITIZEN_DATABASE_CONNECT_TIMEOUT", "database", "connect_timeout", _float(0.1, 60)),
    _Variable("CITIZEN_DATABASE_COMMAND_TIMEOUT", "database", "command_timeout", _float(0.1, 3600)),
    _Variable("CITIZEN_REDIS_URL", "redis", "url", _url("redis", "rediss", "unix")),
    _Variable("CITIZEN_REDIS_SOCKET_TIMEOUT", "redis", "socket_timeout", _float(0.1, 60)),
    _Variable("CITIZEN_HTTP_HOST", "http", "host", str),
    _Variable("CITIZEN_HTTP_PORT", "http", "port", _int(0, 65535)),
    _Variable("CITIZEN_WORKERS", "http", "workers", _int(1, 64)),
    _Variable("CITIZEN_SHUTDOWN_GRACE", "http", "shutdown_grace", _float(0, 600)),
    _Variable("CITIZEN_PUBLIC_URL", "http", "public_url", str),
    _Variable("CITIZEN_IDENTITY_CODE_TTL", "identity", "code_ttl", _int(30, 3600)),
    _Variable("CITIZEN_IDENTITY_CODE_SENDS_PER_MOBILE", "identity", "code_sends_per_mobile", _int(1, 1000)),
    _Variable("CITIZEN_IDENTITY_CODE_SENDS_PER_ADDRESS", "identity", "code_sends_per_address", _int(1, 9999)),
    _Variable("CITIZEN_IDENTITY_MAX_FAILED_ATTEMPTS", "identity", "max_failed_attempts", _int(1, 100)),
    _Variable("CITIZEN_IDENTITY_FAILURE_WINDOW", "identity", "failure_window", _int(60, 86400)),
    _Variable("CITIZEN_IDENTITY_ADDRESS_FAILURE_LIMIT", "identity", "address_failure_limit", _int(1, 100000)),
    _Variable("CITIZEN_IDENTITY_SESSION_TTL", "identity", "session_ttl", _int(60, 30 * 86400)),
    _Variable("CITIZEN_IDENTITY_OPERATOR_SESSION_TTL", "identity", "operator_session_ttl", _int(60, 86400)),
    _Variable("CITIZEN_IDENTITY_ARGON2_TIME_COST", "identity", "argon2_time_cost", _int(1, 20)),
    _Variable("CITIZEN_IDENTITY_ARGON2_MEMORY_KIB", "identity", "argon2_memory_kib", _int(1024, 4 << 20)),
    _Variable("CITIZEN_IDENTITY_ARGON2_PARALLELISM", "identity", "argon2_parallelism", _int(1, 16)),
    _Variable("CITIZEN_IDENTITY_SMS_GATEWAY", "identity", "sms_gateway", str),
    _Variable("CITIZEN_OIDC_ISSUER", "oidc", "issuer", str),
    _Variable("CITIZEN_OIDC_API_AUDIENCE", "oidc", "api_audience", str),
    _Variable("CITIZEN_OIDC_ACCESS_TOKEN_TTL", "oidc", "access_token_ttl", _int(60, 86400)),
    _Variable("CITIZEN_OIDC_ID_TOKEN_TTL", "oidc", "id_token_ttl", _int(60, 86400)),
    _Variable("CITIZEN_OIDC_REFRESH_TOKEN_TTL", "oidc", "refresh_token_ttl", _int(300, 365 * 86400)),
    _Variable("CITIZEN_OIDC_CODE_TTL", "oidc", "code_ttl", _int(1, 60)),
    _Variable("CITIZEN_OIDC_PAR_TTL", "oidc", "par_ttl", _int(1, 600)),
    _Variable("CITIZEN_OIDC_SSO_SESSION_TTL", "oidc", "sso_session_ttl", _int(300, 30 * 86400)),
    _Variable("CITIZEN_OIDC_SIGNING_ALG", "oidc", "signing_alg", str),
    _Variable("CITIZEN_OIDC_KEY_PUBLISH_DELAY", "oidc", "key_publish_delay", _int(0, 7 * 86400)),
    _Variable("CITIZEN_CARD_ISSUER_PREFIX", "card", "issuer_prefix", str),
    _Variable("CITIZEN_CARD_NUMBER_LENGTH", "card", "number_length", _int(12, 19)),
    _Variable("CITIZEN_CARD_ISSUER_CODE", "card", "issuer_code", _int(1, 0xFFFF_FFFF)),
    _Variable("CITIZEN_CARD_VALIDITY_YEARS", "card", "validity_years", _int(1, 30)),
    _Variable("CITIZEN_CARD_QR_VALIDITY", "card", "qr_validity_seconds", _int(5, 3600)),
    _Variable("CITIZEN_CARD_AUTHORISATION_TTL", "card", "authorisation_ttl_seconds", _int(60, 30 * 86400)),
    _Variable("CITIZEN_CARD_PAYMENT_CAP", "card", "single_payment_cap_fen", _int(0, 1_000_000)),
    _Variable("CITIZEN_CARD_OVERDRAFT_LIMIT", "card", "default_overdraft_limit_fen", _int(0, 100_000)),
    _Variable("CITIZEN_CARD_SETTLEMENT_DAYS", "card", "settlement_window_days", _int(1, 90)),
    *(_Variable(name, "integrations", field, parse) for name, field, parse in integration_variables(Secret)),
    _Variable("CITIZEN_TERMINAL_HOST", "terminal", "host", str),
    _Variable("CITIZEN_TERMINAL_PORT", "terminal", "port", _int(0, 65535)),
    _Variable("CITIZEN_TERMINAL_IDLE_TIMEOUT", "terminal", "idle_timeout", _float(1, 86400)),
    _Variable("CITIZEN_TERMINAL_FRAME_TIMEOUT", "terminal", "frame_timeout", _float(0.1, 600)),
    _Variable("CITIZEN_TERMINAL_MAX_BATCH", "terminal", "max_batch_records", _int(1, 500)),
    _Variable("CITIZEN_TERMINAL_BLACKLIST_PAGE", "terminal", "blacklist_page_entries", _int(1, 2900)),
    _Variable("CITIZEN_TERMINAL_MAX_CONNECTIONS", "terminal", "max_connections", _int(1, 100000)),
    _Variable("CITIZEN_TERMINAL_CLOCK_DRIFT", "terminal", "clock_drift_seconds", _int(1, 86400)),
    _Variable("CITIZEN_TERMINAL_PROCESSES", "terminal", "processes", _int(0, 64)),
    _Variable("CITIZEN_TERMINAL_STATUS_CACHE", "terminal", "status_cache_seconds", _float(0, 60)),
    _Variable("CITIZEN_TERMINAL_PARAMETERS_CACHE", "terminal", "parameters_cache_seconds", _float(0, 3600)),
    _Variable("CITIZEN_TERMINAL_LOAD_RESOLVE", "terminal", "load_resolve_after_seconds", _float(0, 9e4)),
    _Variable("CITIZEN_TERMINAL_LOAD_DOUBTFUL", "terminal", "load_doubtful_after_seconds", _float(0, 3e6)),
    _Variable("CITIZEN_PAYMENTS_TOPUP_MIN", "payments", "topup_min", _int(1, 1_000_000)),
    _Variable("CITIZEN_PAYMENTS_TOPUP_MAX", "payments", "topup_max", _int(1, 10_000_000)),
    _Variable("CITIZEN_PAYMENTS_ORDER_TTL", "payments", "order_ttl", _int(60, 86400)),
    _Variable("CITIZEN_PAYMENTS_QUERY_AFTER", "payments", "query_after", _int(1, 86400)),
    _Variable("CITIZEN_PAYMENTS_FEE_BPS", "payments", "fee_bps", _int(0, 10_000)),
    _Variable("CITIZEN_PAYMENTS_NOTIFY_BASE_URL", "payments", "notify_base_url", str),
    _Variable("CITIZEN_PAYMENTS_SWEEP_INTERVAL", "payments", "sweep_interval", _int(0, 86400)),
)


def documented_variables() -> list[tuple[str, str]]:
    """``(name, setting path)`` pairs, for ``citizen settings`` and the README."""
    return [(v.name, f"{v.section + '.' if v.section else ''}{v.field}") for v in _VARIABLES]
