"""The gateway as child processes of ``citizen serve``.

``citizen serve`` runs :data:`GATEWAY_COMMAND` ``default_processes(...)`` times side by side on the
terminal port (SO_REUSEPORT; they share nothing but PostgreSQL and Redis) under the shell's
process supervisor (``backend.workers.ProcessSupervisor``), which restarts any that dies, whatever
killed it (a crash, the OOM killer, ``kill -9``): terminals reconnect, sign on again if needed and
re-send what was not acknowledged, and the host answers a re-sent record "duplicate".
"""

from __future__ import annotations

import os
import sys
from typing import Final

__all__ = ["GATEWAY_COMMAND", "default_processes"]

GATEWAY_COMMAND: Final = (sys.executable, "-m", "card.terminal.gateway")


def default_processes(configured: int) -> int:
    return configured or max(1, min(4, os.cpu_count() or 1))
