"""The ``terminal`` section of the settings (``CITIZEN_TERMINAL_*``, named in ``backend/settings.py``)."""

from __future__ import annotations

import msgspec

from card.terminal.spec import MAX_BLACKLIST_PAGE_ENTRIES

__all__ = ["TerminalSettings"]


class TerminalSettings(msgspec.Struct, frozen=True, kw_only=True):
    # Where the terminal gateway listens (binary protocol over TCP, docs/terminal-protocol.md).
    host: str = "127.0.0.1"
    port: int = 9100
    # A connection that sends nothing for this long is closed (terminals heartbeat every minute).
    idle_timeout: float = 300.0
    # Once a frame has started, the rest of it must arrive within this many seconds (slow senders).
    frame_timeout: float = 10.0
    max_frame_size: int = 65535
    max_batch_records: int = 500
    # Card numbers per BLACKLIST_RESPONSE page (docs/terminal-protocol.md §8): a city's list is
    # hundreds of thousands of cards and one answer holds at most 65,535 bytes, so longer lists are
    # sent in pages. At most MAX_BLACKLIST_PAGE_ENTRIES (2,900), which always fit a frame.
    blacklist_page_entries: int = 2_500
    max_connections: int = 5000
    # Records dated more than this ahead of the host clock go to suspense; so do sign-ons outside it.
    clock_drift_seconds: int = 600
    # Records older than this at upload go to suspense (late upload).
    upload_age_limit_days: int = 30
    # Session keys live this long in Redis after sign-on (refreshed by traffic).
    session_ttl_seconds: int = 86400
    # Every request re-checks that its terminal is still active and still has the master key its
    # session was signed on with; a gateway process may take that from a record it read this many
    # seconds ago (0: read PostgreSQL on every request). Disable and re-key also end the session in
    # Redis at once, so this bounds only the rarer cases: a sign-on racing the change, or Redis
    # unreachable when it was made. Refusals are always decided on a fresh read.
    status_cache_seconds: float = 2.0
    # The platform parameters (QR public keys, issuers, QR validity) are re-read after this long, so
    # a rotated QR signing key reaches terminals (parameter version) and the host's own QR checks
    # without a restart.
    parameters_cache_seconds: float = 30.0
    # Gateway processes ``citizen serve`` runs side by side on the port (0: one per core, at most 4);
    # each is restarted if it dies.
    processes: int = 0
    # Loads the kiosk neither confirmed nor reversed (docs/terminal-protocol.md §6): the resolution
    # job (``citizen card loads``) looks at those authorised this long ago, and resolves each on the
    # card's evidence; one still without evidence after ``load_doubtful_after_seconds`` is listed
    # for the operators (doubtful), who alone may post or void it.
    load_resolve_after_seconds: float = 300.0
    load_doubtful_after_seconds: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("terminal port must be 0..65535")
        if not 0 <= self.processes <= 64:
            raise ValueError("terminal processes must be 0..64")
        if not 1 <= self.max_batch_records <= 500:
            raise ValueError("terminal max_batch_records must be 1..500")
        if not 1 <= self.blacklist_page_entries <= MAX_BLACKLIST_PAGE_ENTRIES:
            raise ValueError(f"terminal blacklist_page_entries must be 1..{MAX_BLACKLIST_PAGE_ENTRIES}")
        if not 64 <= self.max_frame_size <= 65535:
            raise ValueError("terminal max_frame_size must be 64..65535")
        for name in ("idle_timeout", "frame_timeout", "clock_drift_seconds", "session_ttl_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"terminal {name} must be positive")
        if self.load_doubtful_after_seconds < self.load_resolve_after_seconds:
            raise ValueError("terminal load_doubtful_after_seconds must be >= load_resolve_after_seconds")
        for name in ("status_cache_seconds", "parameters_cache_seconds", "load_resolve_after_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"terminal {name} must not be negative")
