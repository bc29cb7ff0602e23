"""API workers with a listening socket each (``backend.workers``): new connections reach every
worker (uvicorn's one shared socket let one worker take them all), a killed worker is replaced,
SIGTERM stops them all."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from backend.workers import listening_socket

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    sock = listening_socket("127.0.0.1", 0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def _pid_over_new_connection(port: int) -> int | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/")
        return int(connection.getresponse().read())
    except (OSError, ValueError):
        return None
    finally:
        connection.close()


def _children(pid: int) -> set[int]:
    # Over every thread: a replacement is started by the supervisor's watcher thread.
    return {
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    }


def _until(condition: object, what: str) -> None:
    for _ in range(600):  # a generous bound on a busy machine, not a timing assertion
        if callable(condition) and condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"never: {what}")


def test_connections_reach_every_worker_and_a_killed_one_is_replaced() -> None:
    port = _free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "backend.workers", "tests.backend._pid_app:app", "--workers", "2",
         "--port", str(port), "--grace", "5", "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        _until(lambda: len(_children(supervisor.pid)) == 2, "two workers")
        workers = _children(supervisor.pid)
        # Each worker binds its own socket once it has loaded the app: until the slower one has,
        # the other takes every connection (seen on a busy machine), so wait for both to answer.
        _until(lambda: {_pid_over_new_connection(port) for _ in range(16)} == workers, "both answering")
        # 64 new connections, each handed to a listening worker by the kernel's hash: all to one of
        # two would happen with probability 2**-63.
        answered = {_pid_over_new_connection(port) for _ in range(64)}
        assert answered == workers

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        _until(lambda: len(_children(supervisor.pid) - workers) == 1, "a replacement worker")
        replacement = (_children(supervisor.pid) - workers).pop()
        _until(
            lambda: replacement in {_pid_over_new_connection(port) for _ in range(16)}, "replacement serving"
        )
        assert victim not in _children(supervisor.pid)

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0
        for pid in workers | {replacement}:
            assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()


def test_workers_end_with_a_killed_supervisor() -> None:
    port = _free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "backend.workers", "tests.backend._pid_app:app", "--workers", "2",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        _until(lambda: len(_children(supervisor.pid)) == 2, "two workers")
        workers = _children(supervisor.pid)
        _until(lambda: _pid_over_new_connection(port) is not None, "an answer")
    finally:
        supervisor.kill()
        supervisor.wait()
    _until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "orphans gone")


def test_a_taken_port_fails_at_once() -> None:
    taken = listening_socket("127.0.0.1", 0)
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
    taken.listen()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "backend.workers", "tests.backend._pid_app:app", "--workers", "2",
             "--port", str(taken.getsockname()[1])],
            cwd=ROOT, capture_output=True, check=False, timeout=120,
        )  # fmt: skip
        assert result.returncode != 0
        assert b"Address already in use" in result.stderr
    finally:
        taken.close()
