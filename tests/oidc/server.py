"""The app as a real HTTP server (uvicorn in a subprocess) on the test's database and Redis."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from backend.settings import Settings
from integrations.simulators.process import upstream_variables

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(settings: Settings, upstreams: dict[str, str]) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    assert settings.database.url is not None and settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {
            "CITIZEN_ENV": "test",
            "CITIZEN_DATA_DIR": str(settings.data_dir),  # the same development keyring as the tests
            "CITIZEN_DATABASE_URL": settings.database.url.reveal(),
            "CITIZEN_REDIS_URL": settings.redis.url.reveal(),
            "CITIZEN_OIDC_ISSUER": base,
            "CITIZEN_LOG_LEVEL": "WARNING",
            "CITIZEN_LOG_JSON": "false",
            **upstream_variables(upstreams),
        }
    )
    log = Path(settings.data_dir) / f"server-{port}.log"
    log_file = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "backend.asgi:create_app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
