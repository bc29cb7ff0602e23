"""The ``citizen`` command as a user runs it: real processes, real signals."""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from backend import migrations
from backend.cli import build_parser

pytestmark = pytest.mark.slow


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    (subcommands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    names = subcommands.choices
    assert {"serve", "migrate", "demo", "services"} <= set(names)
    for name in names:
        result = subprocess.run(
            [sys.executable, "-m", "backend.cli", name, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, name
        assert "usage: citizen" in result.stdout


def test_settings_lists_the_keys_without_their_values(tmp_path: Path) -> None:
    from backend.keyring import KEY_NAMES, key_variable

    secret = "A" * 43 + "="
    env = {**os.environ, "CITIZEN_ENV": "development", "CITIZEN_DATA_DIR": str(tmp_path)}
    env[key_variable("otp")] = secret
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "settings"], capture_output=True, text=True, check=True, env=env
    )
    listed = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    for purpose in KEY_NAMES:
        assert key_variable(purpose) in listed
    assert listed[key_variable("otp")].endswith(" set")
    assert "CITIZEN_TERMINALS_PASSWORD" in listed and "CITIZEN_HTTP_PORT" in listed
    assert secret not in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {"CITIZEN_ENV": "development", "CITIZEN_DATA_DIR": str(data_dir), "CITIZEN_LOG_LEVEL": "WARNING"}
    )
    env.update(extra)
    return env


def _wait_ready(process: subprocess.Popen[str], port: int) -> httpx.Response:
    for _ in range(600):  # bounded; no clock is asserted
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if response.status_code == 200:
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve never became ready")


Serve = Callable[..., subprocess.Popen[str]]  # serve(env, port, *extra arguments)


@pytest.fixture
def serve() -> Iterator[Serve]:
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], port: int, *extra: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend.cli", "serve", "--port", str(port), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_twice_keeps_the_data_and_stops_cleanly(tmp_path: Path, serve: Serve) -> None:
    env = _environment(tmp_path / "var")
    outputs = []
    session_keys = []  # the session key on disk after each run
    for _ in range(2):
        port = _free_port()
        process = serve(env, port)
        status = _wait_ready(process, port)
        assert status.json()["status"] == "ready"
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        outputs.append(output)
        session_keys.append((tmp_path / "var" / "keys" / "session.key").read_bytes())
        assert f"http://127.0.0.1:{port}" in output
    assert migrations.discover()
    assert "applied" in outputs[0]  # the first run built the schema...
    assert "applied" not in outputs[1]  # ...the second found it in the data directory
    assert session_keys[0] == session_keys[1]  # the second run kept the first run's keys
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()  # PostgreSQL was stopped
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()  # and Redis


def test_serve_demo_tops_up_through_the_simulators_it_started(tmp_path: Path, serve: Serve) -> None:
    # `make run`: the demo day needs the payment channel simulators, so serve must start them
    # before it loads the demo (it once loaded the demo first and every top-up was skipped).
    port = _free_port()
    env = _environment(tmp_path / "var", CITIZEN_TERMINAL_PORT=str(_free_port()))
    process = serve(env, port, "--demo")
    _wait_ready(process, port)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "top-ups skipped" not in output, output
    for channel in ("unionpay", "alipay", "wechatpay"):
        line = rf"demo  payments: top-up {channel}: 50\.00 yuan, order TU\w+ credited"
        assert re.search(line, output), output
    assert "summary: topped up 150.00 yuan" in output, output
    # ... and the demo card's social security and health applications come through the connectors.
    card_line = next((line for line in output.splitlines() if "applications:" in line), output)
    for application in ("transit_epurse", "social_security", "health"):
        assert f"{application} active" in card_line, card_line


def test_serve_uses_external_servers_when_given(tmp_path: Path, serve: Serve) -> None:
    services = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "services"],
        env=_environment(tmp_path / "external"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert services.stdout is not None
        urls = dict(services.stdout.readline().strip().split("=", 1) for _ in range(2))
        assert set(urls) == {"CITIZEN_DATABASE_URL", "CITIZEN_REDIS_URL"}
        port = _free_port()
        own_dir = tmp_path / "app"
        process = serve(_environment(own_dir, **urls), port)
        _wait_ready(process, port)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
        assert not (own_dir / "postgres").exists()  # nothing embedded was started
        assert not (own_dir / "redis").exists()
    finally:
        services.send_signal(signal.SIGTERM)
        services.communicate(timeout=60)
    assert services.returncode == 0


def test_commands_adopt_the_simulators_a_running_serve_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `citizen reconcile` in a second terminal must reach the simulators `make run` started.
    from backend.cli._common import announce_upstreams, settings_from

    for name in [k for k in os.environ if k.startswith("CITIZEN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CITIZEN_ENV", "development")
    monkeypatch.setenv("CITIZEN_DATA_DIR", str(tmp_path))
    args = build_parser().parse_args(["reconcile", "--date", "2026-11-21"])
    url = "http://127.0.0.1:1/unionpay"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    announce_upstreams(settings_from(args), dead.pid, {"CITIZEN_UPSTREAM_UNIONPAY_URL": url})
    assert settings_from(args).integrations.upstream("unionpay").url == ""  # its process is gone
    announce_upstreams(settings_from(args), os.getpid(), {"CITIZEN_UPSTREAM_UNIONPAY_URL": url})
    assert settings_from(args, adopt_upstreams=False).integrations.upstream("unionpay").url == ""
    assert settings_from(args).integrations.upstream("unionpay").url == url
