"""Starting the simulators as a separate process and reading their URLs (CLI, tests, benches).

>>> with running_simulators() as simulators:
...     simulators.urls["population"]        # "http://127.0.0.1:40123/population"

The child gets ``--watch-stdin`` and a pipe as standard input: if this process dies without
stopping it, the pipe closes and the child exits on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping

__all__ = [
    "SimulatorsError",
    "SimulatorsProcess",
    "running_simulators",
    "start_simulators",
    "upstream_variables",
]


class SimulatorsError(RuntimeError):
    """The simulators did not start."""


class SimulatorsProcess:
    def __init__(self, process: subprocess.Popen[bytes], urls: dict[str, str]) -> None:
        self.process = process
        self.urls = urls

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
        process = self.process
        if process.stdin is not None:
            process.stdin.close()  # with --watch-stdin, that alone stops it
            process.stdin = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        return process.returncode


def start_simulators(
    env: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 30.0,
) -> SimulatorsProcess:
    """Start ``python -m integrations.simulators`` and wait for its URLs (its stderr is ours)."""
    command = [sys.executable, "-m", "integrations.simulators", "--host", host, "--port", str(port)]
    process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [*command, "--watch-stdin"],
        env=dict(os.environ if env is None else env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        urls = _read_urls(process, startup_timeout)
    except BaseException:
        SimulatorsProcess(process, {}).stop()
        raise
    return SimulatorsProcess(process, urls)


def _read_urls(process: subprocess.Popen[bytes], startup_timeout: float) -> dict[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + startup_timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SimulatorsError(f"the simulators did not start within {startup_timeout} s")
        ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                process.wait(timeout=5)
                raise SimulatorsError(f"the simulators exited with {process.returncode}")
            line += chunk
    urls = json.loads(line)
    if not isinstance(urls, dict):
        raise SimulatorsError(f"unexpected first line from the simulators: {line[:200]!r}")
    return {str(k): str(v) for k, v in urls.items()}


@contextlib.contextmanager
def running_simulators(
    env: Mapping[str, str] | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimulatorsProcess]:
    simulators = start_simulators(env, host=host, port=port)
    try:
        yield simulators
    finally:
        simulators.stop()


def upstream_variables(urls: Mapping[str, str]) -> dict[str, str]:
    """``{"CITIZEN_UPSTREAM_POPULATION_URL": ..., ...}`` for the app's workers."""
    return {f"CITIZEN_UPSTREAM_{name.upper()}_URL": url for name, url in urls.items()}
