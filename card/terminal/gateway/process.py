"""The gateway as a child process of ``citizen serve`` (the API workers stay uvicorn's)."""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["start_gateway_process", "stop_gateway_process"]


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
