"""API workers side by side on one port, each with a listening socket of its own (SO_REUSEPORT).

uvicorn's ``--workers`` shares one listening socket among its processes: whichever worker is
awake accepts a whole burst of keep-alive connections and keeps them for their lifetime. Measured
with wrk's 32 connections against two workers: splits of 32/0, 31/1 and 28/4, so two workers
served no more than one. Here every worker binds its own socket in one SO_REUSEPORT group, and the
kernel hands each new connection to one of them by a hash of its addresses (Linux ≥ 3.9), so
connections spread evenly whoever is awake.

:func:`api_workers` starts ``count`` workers (``python -m backend.workers --worker …``) under a
:class:`ProcessSupervisor`, which restarts any that dies (it runs the terminal gateways of
``citizen serve`` too); ``stop`` sends SIGTERM, on which uvicorn drains the requests in flight.
``python -m backend.workers TARGET --workers N`` runs the same from a shell (the benchmarks use it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["ProcessSupervisor", "api_workers", "listening_socket"]

log = logging.getLogger("citizen.workers")

# A worker that exits this soon after it started, this many times in a row, is not restarted
# again: the app cannot start (a bad setting, a port taken by a socket outside the group).
_EARLY_EXIT_SECONDS = 5.0
_EARLY_EXITS = 3


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` in the port's SO_REUSEPORT group (listened on by uvicorn)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class ProcessSupervisor:
    """``count`` copies of ``command`` side by side, each restarted (after ``backoff`` seconds)
    when it exits, whatever killed it; ``stop`` sends SIGTERM and SIGKILL after ``grace``. With
    ``give_up_after``, a copy that exits that many times in a row within seconds of its start is
    left dead and ``failed`` is set (it cannot start: a bad setting, a port taken)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        count: int,
        name: str,
        grace: float,
        env: dict[str, str] | None = None,
        backoff: float = 0.5,
        give_up_after: int | None = None,
        announce: Callable[[str], None] | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self._command = list(command)
        self._name = name
        self._env = env
        self._grace = grace
        self._backoff = backoff
        self._give_up_after = give_up_after
        self._announce = announce
        self._log = logger
        self._stopping = threading.Event()
        self.failed = threading.Event()
        self._lock = threading.Lock()
        self.restarts = 0
        self.processes = [self._start() for _ in range(count)]
        for i in range(count):
            threading.Thread(target=self._watch, args=(i,), name=f"{name}-{i}", daemon=True).start()

    def _start(self) -> subprocess.Popen[bytes]:
        # The command is this interpreter and one of the project's modules (callers' arguments).
        return subprocess.Popen(self._command, env=self._env, stdin=subprocess.DEVNULL)  # noqa: S603

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.processes]

    def _watch(self, index: int) -> None:
        early = 0
        while not self._stopping.is_set():
            with self._lock:
                process = self.processes[index]
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            early = early + 1 if time.monotonic() - started < _EARLY_EXIT_SECONDS else 0
            if self._give_up_after is not None and early >= self._give_up_after:
                self._say(f"{self._name} exited {early} times in a row at start ({code}); not restarted")
                self.failed.set()
                return
            time.sleep(self._backoff)
            if self._stopping.is_set():
                return
            with self._lock:
                replacement = self.processes[index] = self._start()
                self.restarts += 1
            self._say(f"{self._name} pid {process.pid} exited ({code}); restarted as pid {replacement.pid}")

    def _say(self, message: str) -> None:
        self._log.warning(message)
        if self._announce is not None:
            self._announce(message)

    def wait(self) -> None:
        """Until a signal handler raises, or a copy cannot start."""
        while not self.failed.wait(1.0):
            pass

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            processes = list(self.processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + self._grace
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def api_workers(
    target: str,
    *,
    host: str,
    port: int,
    count: int,
    factory: bool = False,
    log_level: str | None = None,
    grace: float = 30.0,
    env: dict[str, str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> ProcessSupervisor:
    """``count`` uvicorn workers serving ``target`` on ``host:port``, a listening socket each."""
    listening_socket(host, port).close()  # fails here, once, if the port is taken
    command = [sys.executable, "-m", "backend.workers", "--worker", target]
    command += ["--host", host, "--port", str(port), "--grace", str(int(grace))]
    if factory:
        command.append("--factory")
    if log_level:
        command += ["--log-level", log_level]
    # SIGTERM: uvicorn drains the requests in flight within ``grace``; SIGKILL 5 s after that.
    return ProcessSupervisor(
        command, count=count, name="API worker", grace=grace + 5, env=env,
        give_up_after=_EARLY_EXITS, announce=announce,
    )  # fmt: skip


def _die_with_parent() -> None:
    """SIGTERM when the supervisor dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG): a worker
    must not keep serving, orphaned, on the port a new supervisor wants."""
    if sys.platform != "linux":
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1: PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        sys.exit(0)


def _worker(args: argparse.Namespace) -> None:
    import uvicorn

    _die_with_parent()
    sock = listening_socket(args.host, args.port)
    config = uvicorn.Config(
        args.target,
        factory=args.factory,
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=args.log_level,
        access_log=False,  # the app's middleware writes the access log
        server_header=False,
        timeout_graceful_shutdown=args.grace,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.workers", description=__doc__.split("\n")[0])
    parser.add_argument("target", help="the ASGI app, module:attribute")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--factory", action="store_true", help="target is a factory of the app")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--grace", type=int, default=30, help="seconds to drain on SIGTERM")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    supervisor = api_workers(
        args.target, host=args.host, port=args.port, count=args.workers, factory=args.factory,
        log_level=args.log_level, grace=args.grace, env=dict(os.environ),
    )  # fmt: skip

    def stop(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        supervisor.wait()
    except KeyboardInterrupt:
        pass
    finally:
        supervisor.stop()
    return 1 if supervisor.failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
