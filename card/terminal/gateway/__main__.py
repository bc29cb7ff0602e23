"""``python -m card.terminal.gateway``: the gateway alone, configured from ``CITIZEN_*`` (URLs required)."""

from __future__ import annotations

import sys

from backend.keyring import Keyring
from backend.observability import configure_logging
from backend.settings import Settings
from card.terminal.gateway import run_gateway


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, json_lines=settings.log_json and not sys.stderr.isatty())
    if settings.database.url is None or settings.redis.url is None:
        sys.stderr.write("CITIZEN_DATABASE_URL and CITIZEN_REDIS_URL are required (or `citizen gateway`)\n")
        return 2
    return run_gateway(settings, Keyring.load(settings), _announce)


def _announce(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
