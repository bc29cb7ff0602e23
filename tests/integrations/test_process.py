"""The simulators as a user meets them: ``citizen simulators`` alone, and started by ``citizen serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from integrations.simulators.process import start_simulators

pytestmark = pytest.mark.slow


def _environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {"CITIZEN_ENV": "development", "CITIZEN_DATA_DIR": str(data_dir), "CITIZEN_LOG_LEVEL": "WARNING"}
    )
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_citizen_simulators_prints_its_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "simulators"],
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        assert {"population", "enterprise", "social_security"} <= set(urls)
        control = httpx.get(f"{urls['enterprise']}/_control", timeout=5)
        assert control.json()["faults"]["outage"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def test_the_simulators_exit_when_their_parent_closes_the_pipe(tmp_path: Path) -> None:
    simulators = start_simulators(_environment(tmp_path))
    try:
        assert simulators.process.stdin is not None
        simulators.process.stdin.close()  # what the parent's death does
        simulators.process.stdin = None
        assert simulators.process.wait(timeout=30) == 0
    finally:
        simulators.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_in_development_starts_the_simulators_and_stops_them(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", "--port", str(port)],
        env=_environment(tmp_path / "var"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        assert process.stdout is not None
        for line in process.stdout:  # bounded by the banner; the process is killed on failure
            output += line
            if "Ctrl-C" in line:
                break
        assert "upstreams      simulated (pid " in output, output
        pid = int(output.split("simulated (pid ", 1)[1].split(")", 1)[0])
        assert _alive(pid)
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output + rest
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_process_that_fails_to_start_is_reported(tmp_path: Path) -> None:
    env = _environment(tmp_path)
    env["CITIZEN_ENV"] = "production"  # no simulator key in production: it refuses to start
    with pytest.raises(RuntimeError, match="exited"):
        start_simulators(env, startup_timeout=60)
