"""The ``integrations`` settings section: where each upstream is, and how long we wait for it.

``backend/settings.py`` holds the section and names its variables; they are generated here from
``UPSTREAMS`` so that adding an upstream is one line in this module:

- ``CITIZEN_UPSTREAM_<NAME>_URL``: base URL of the upstream (empty: not configured; in
  development ``citizen serve`` starts the simulators and sets these);
- ``CITIZEN_UPSTREAM_<NAME>_BUDGET``: the connector's whole time budget per call, in seconds
  (retries and the token request included);
- ``CITIZEN_UPSTREAM_<NAME>_CREDENTIAL``: the client secret, API key or signing key. Outside
  production an unset credential is derived from the keyring's ``simulator`` key, which is what
  the simulators expect;
- ``CITIZEN_UPSTREAM_BREAKER_THRESHOLD`` / ``_WINDOW`` / ``_COOLDOWN``: the circuit breaker;
- ``CITIZEN_ENTRANCE_TILE_BUDGET`` (seconds per home tile), ``_TILE_BUDGETS`` (``bus=0.2,...``),
  ``_PAGE_BUDGET`` (the cap for every tile), ``_BUS_STOP`` (the default stop), and
  ``_CATALOGUE_REFRESH`` (seconds before a catalogue edit shows): the home page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec

__all__ = [
    "UPSTREAMS",
    "EntranceSettings",
    "IntegrationsSettings",
    "Revealable",
    "UpstreamSettings",
    "integration_variables",
]

# Every upstream the app talks to, by its name in settings, URLs, metrics and Redis keys.
UPSTREAMS: tuple[str, ...] = (
    "population",
    "enterprise",
    "social_security",
    "medical_insurance",
    "health",
    "bus",
    "gov_services",
    "utilities",
    *("unionpay", "alipay", "wechatpay"),  # payment channels (payments.channels; simulated there)
)


class Revealable(Protocol):
    """``backend.settings.Secret`` (not imported: ``backend.settings`` imports this module)."""

    def reveal(self) -> str: ...


class UpstreamSettings(msgspec.Struct, frozen=True, kw_only=True):
    url: str = ""
    budget: float = 1.0
    credential: Revealable | None = None


class EntranceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The home page: how long each tile may take, and the page as a whole."""

    tile_budget: float = 0.3  # seconds per tile, its upstream call (retries included) within
    tile_budgets: dict[str, float] = msgspec.field(default_factory=dict)  # per tile, e.g. {"bus": 0.2}
    page_budget: float = 0.5  # no tile gets more than this
    default_bus_stop: str = "SZ-FT-001"
    catalogue_refresh: float = 30.0  # seconds before an operator's catalogue edit shows

    def budget_of(self, tile: str) -> float:
        return min(self.tile_budgets.get(tile, self.tile_budget), self.page_budget)


class IntegrationsSettings(msgspec.Struct, frozen=True, kw_only=True):
    upstreams: dict[str, UpstreamSettings] = msgspec.field(default_factory=dict)
    entrance: EntranceSettings = msgspec.field(default_factory=EntranceSettings)
    breaker_threshold: int = 5  # failures in a row (none older than the window) that open the breaker
    breaker_window: float = 30.0  # seconds; also the window of the failure ratio (``CircuitBreaker``)
    breaker_cooldown: float = 15.0  # seconds open before one probe is let through

    def upstream(self, name: str) -> UpstreamSettings:
        if name not in UPSTREAMS:
            raise KeyError(f"unknown upstream {name!r}")
        return self.upstreams.get(name) or UpstreamSettings()

    def with_urls(self, urls: Mapping[str, str]) -> IntegrationsSettings:
        """A copy with these base URLs (e.g. the simulators'), other fields kept."""
        upstreams = dict(self.upstreams)
        for name, url in urls.items():
            upstreams[name] = msgspec.structs.replace(self.upstream(name), url=url)
        return msgspec.structs.replace(self, upstreams=upstreams)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> IntegrationsSettings:
        """Build from ``{"population.url": ..., "breaker_threshold": ...}`` as parsed from the env."""
        per_upstream: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        entrance: dict[str, Any] = {}
        for key, value in values.items():
            if key.startswith("entrance."):
                entrance[key.removeprefix("entrance.")] = value
            elif "." in key:
                name, field = key.split(".", 1)
                per_upstream.setdefault(name, {})[field] = value
            else:
                top[key] = value
        return cls(
            upstreams={name: UpstreamSettings(**fields) for name, fields in per_upstream.items()},
            entrance=EntranceSettings(**entrance),
            **top,
        )


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected a URL starting with http:// or https://")
    return raw.rstrip("/")


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _count(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 10_000:
        raise ValueError(f"must be between 1 and 10000, got {value}")
    return value


def _budgets(raw: str) -> dict[str, float]:
    """``bus=0.2,health=0.4``: per-tile budgets in seconds."""
    budgets: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        tile, sep, seconds = part.partition("=")
        if not sep or not tile.strip():
            raise ValueError(f"expected tile=seconds, got {part!r}")
        budgets[tile.strip()] = _seconds(0.01, 30)(seconds.strip())
    return budgets


def integration_variables(
    secret: Callable[[str], Any],
) -> list[tuple[str, str, Callable[[str], Any]]]:
    """``(variable, flat field, parser)`` for ``backend.settings._VARIABLES``; ``secret`` wraps keys."""
    variables: list[tuple[str, str, Callable[[str], Any]]] = []
    for name in UPSTREAMS:
        prefix = f"CITIZEN_UPSTREAM_{name.upper()}"
        variables += [
            (f"{prefix}_URL", f"{name}.url", _http_url),
            (f"{prefix}_BUDGET", f"{name}.budget", _seconds(0.01, 120)),
            (f"{prefix}_CREDENTIAL", f"{name}.credential", secret),
        ]
    variables += [
        ("CITIZEN_ENTRANCE_TILE_BUDGET", "entrance.tile_budget", _seconds(0.01, 30)),
        ("CITIZEN_ENTRANCE_TILE_BUDGETS", "entrance.tile_budgets", _budgets),
        ("CITIZEN_ENTRANCE_PAGE_BUDGET", "entrance.page_budget", _seconds(0.01, 60)),
        ("CITIZEN_ENTRANCE_BUS_STOP", "entrance.default_bus_stop", str),
        ("CITIZEN_ENTRANCE_CATALOGUE_REFRESH", "entrance.catalogue_refresh", _seconds(0, 3600)),
        ("CITIZEN_UPSTREAM_BREAKER_THRESHOLD", "breaker_threshold", _count),
        ("CITIZEN_UPSTREAM_BREAKER_WINDOW", "breaker_window", _seconds(0.1, 3600)),
        ("CITIZEN_UPSTREAM_BREAKER_COOLDOWN", "breaker_cooldown", _seconds(0, 3600)),
    ]
    return variables
