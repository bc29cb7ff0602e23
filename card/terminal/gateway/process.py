"""The gateway as child processes of ``citizen serve`` (the API workers stay uvicorn's).

:class:`GatewaySupervisor` runs ``processes`` gateways side by side on the terminal port
(SO_REUSEPORT; they share nothing but PostgreSQL and Redis) and restarts any that dies, whatever
killed it (a crash, the OOM killer, ``kill -9``): terminals reconnect, sign on again if needed and
re-send what was not acknowledged, and the host answers a re-sent record "duplicate".
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["GatewaySupervisor", "start_gateway_process", "stop_gateway_process"]

log = logging.getLogger("citizen.terminal.gateway")


def start_gateway_process(env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m card.terminal.gateway`` with ``env`` (default: this process's, URLs set)."""
    return subprocess.Popen(
        [sys.executable, "-m", "card.terminal.gateway"],
        env=dict(os.environ if env is None else env),
        stdin=subprocess.DEVNULL,
    )


def stop_gateway_process(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def default_processes(configured: int) -> int:
    return configured or max(1, min(4, os.cpu_count() or 1))


class GatewaySupervisor:
    """``count`` gateway processes, each restarted (after ``backoff`` seconds) when it exits."""

    def __init__(
        self,
        count: int,
        env: dict[str, str] | None = None,
        *,
        backoff: float = 0.5,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self._env = env
        self._backoff = backoff
        self._announce = announce
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.restarts = 0
        self.processes = [start_gateway_process(env) for _ in range(count)]
        self._threads = [
            threading.Thread(target=self._watch, args=(i,), name=f"gateway-supervisor-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.processes]

    def _watch(self, index: int) -> None:
        while not self._stopping.is_set():
            with self._lock:
                process = self.processes[index]
            code = process.wait()
            if self._stopping.is_set():
                return
            time.sleep(self._backoff)
            if self._stopping.is_set():
                return
            with self._lock:
                replacement = start_gateway_process(self._env)
                self.processes[index] = replacement
                self.restarts += 1
            message = (
                f"terminal gateway pid {process.pid} exited ({code}); restarted as pid {replacement.pid}"
            )
            log.warning(message)
            if self._announce is not None:
                self._announce(message)

    def stop(self, grace: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            processes = list(self.processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
