"""Shared plumbing for the benchmarks: embedded servers, HTTP load with wrk, JSON output.

Every figure is printed beside a baseline measured in the same run on the same machine, so a
number is read as a ratio to what this machine can do, not as an absolute claim.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from backend.runtime import Services, resolved_services
from backend.settings import Environment, Settings

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError, ValueError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_mb": memory,
        "python": platform.python_version(),
        "system": platform.system(),
    }


def emit(bench: str, metric: str, value: float, unit: str, **fields: Any) -> None:
    record: dict[str, Any] = {"bench": bench, "metric": metric, "value": round(value, 3), "unit": unit}
    record.update(fields)
    if record.get("baseline_value"):
        record.setdefault("ratio", round(value / record["baseline_value"], 3))
    record["machine"] = machine()
    print(json.dumps(record, ensure_ascii=False), flush=True)


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """Embedded PostgreSQL and Redis in a throwaway directory (or the configured URLs)."""
    with tempfile.TemporaryDirectory(prefix="citizen-bench-") as directory:
        env = Settings.from_env()
        settings = Settings(
            environment=Environment.DEVELOPMENT,
            data_dir=Path(directory),
            database=env.database,
            redis=env.redis,
        )
        with resolved_services(settings, durable=True) as resolved:
            yield resolved


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(resolved: Services, **extra: str) -> dict[str, str]:
    s = resolved.settings
    assert s.database.url is not None and s.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {
            "CITIZEN_ENV": "development",
            "CITIZEN_DATA_DIR": str(s.data_dir),
            "CITIZEN_DATABASE_URL": s.database.url.reveal(),
            "CITIZEN_REDIS_URL": s.redis.url.reveal(),
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def uvicorn_server(
    target: str, env: dict[str, str], *, workers: int = 1, factory: bool = False
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    # More than one worker: backend.workers (a listening socket per worker, as `citizen serve`
    # runs them), not uvicorn's --workers, whose shared socket leaves the connections uneven.
    command = [
        sys.executable,
        "-m",
        "uvicorn" if workers == 1 else "backend.workers",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    if workers == 1:
        command.append("--no-access-log")
    if factory:
        command.append("--factory")
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"{target} exited with {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/healthz", timeout=1).status_code < 500:
                    break
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: the HTTP benchmarks need wrk (Debian package 'wrk')")
    return found


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, connections: int = 32, seconds: int = 10, threads: int = 1) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) from one wrk run."""
    output = subprocess.run(
        [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = {}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    result["rps"] = float(rate.group(1)) if rate else 0.0
    for percentile in ("50", "90", "99"):
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match:
            result[f"p{percentile}_ms"] = float(match.group(1)) * _UNITS[match.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def _spin(seconds: float, out: Any) -> None:
    end, count = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for _ in range(1000):
            pass
        count += 1
    out.put(count)


def parallel_capacity(seconds: float = 0.3) -> float:
    """How many cores' worth of work the machine gives right now: a pure-Python loop in two
    processes at once against the same loop alone (2.0 when both vCPUs are free). On this shared
    host the second vCPU's capacity came and went (1.1 to 2.0 within minutes), and no two-worker
    ratio can exceed it, so it is measured before each two-worker run and printed beside it."""
    import multiprocessing

    context = multiprocessing.get_context("fork")

    def work(processes: int) -> int:
        queue = context.SimpleQueue()
        started = [context.Process(target=_spin, args=(seconds, queue)) for _ in range(processes)]
        for process in started:
            process.start()
        for process in started:
            process.join()
        return sum(queue.get() for _ in started)

    # Alone, together, alone again, three times; the median of together / the better alone.
    ratios = sorted(work(2) / max(work(1), work(1), 1) for _ in range(3))
    return round(ratios[1], 2)


def two_worker_ceiling(one_worker: dict[str, Any]) -> dict[str, Any]:
    """The most two workers can give over one on this machine, read from the one-worker run.

    wrk, Redis and PostgreSQL run on the same two cores as the workers. In the one-worker run the
    worker fills a core and the rest of the request's CPU (the load generator's and the stores')
    is taken from the second core's idle time, free. Two workers leave no idle core: with the CPU
    per request unchanged, requests per second can grow at most by 2 / (cores busy with one
    worker). For 1.7 the rest must cost under 0.18 of a worker's CPU per request; wrk alone costs
    0.12-0.19 (a request and its answer over loopback TCP on both sides) before any store.
    A model, not a measurement: when a worker's CPU per request rises with both cores busy (it
    did, 5-15 %) the real figure is lower; an unsaturated one-worker run makes it higher."""
    cores = one_worker.get("cores_used")
    if not cores:
        return {}
    busy = sum(v for k, v in cores.items() if k != "idle")
    rest = busy - cores.get("server", 0.0)
    return {
        "one_worker_cores_busy": round(busy, 2),
        "rest_over_worker_cpu": round(rest / max(cores.get("server", 0.0), 1e-9), 2),
        "ceiling_two_over_one": round(2.0 / max(busy, 1e-9), 2),
    }


_ROLES = (("wrk", b"wrk"), ("redis", b"redis-server"), ("postgres", b"postgres"), ("node", b"node"))


class CpuShares:
    """Cores used by each role over an interval (``start()``, then ``stop()``): the server's
    processes (``pid`` and its children), wrk, Redis, PostgreSQL, node, everything else, and idle.
    On a 2-core machine the load generator and the stores share the cores with the workers, so a
    two-worker figure is read beside where the cores went."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start: tuple[float, dict[str, float], float] | None = None

    @staticmethod
    def _ticks(pid: int) -> float:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return float(int(fields[11]) + int(fields[12]))  # utime + stime
        return 0.0

    def _snapshot(self) -> tuple[float, dict[str, float], float]:
        server = {self.pid}
        with contextlib.suppress(OSError):
            server |= {int(c) for c in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()}
        used: dict[str, float] = collections.defaultdict(float)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            role = "server" if pid in server else next((r for r, m in _ROLES if m in command), "other")
            used[role] += self._ticks(pid)
        cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        return time.monotonic(), dict(used), float(int(cpu[3]) + int(cpu[4]))  # idle + iowait

    def start(self) -> None:
        self._start = self._snapshot()

    def stop(self, exited: dict[str, float] | None = None) -> dict[str, float]:
        """``exited``: CPU seconds of processes that ended during the interval, by role (their
        /proc entries are gone; wait4 gave their usage)."""
        assert self._start is not None
        began, before, idle_before = self._start
        ended, after, idle_after = self._snapshot()
        hz, elapsed = os.sysconf("SC_CLK_TCK"), max(ended - began, 1e-3)
        shares = {role: (after[role] - before.get(role, 0.0)) / hz / elapsed for role in after}
        for role, seconds in (exited or {}).items():
            shares[role] = shares.get(role, 0.0) + seconds / elapsed
        shares["idle"] = (idle_after - idle_before) / hz / elapsed
        return {role: round(v, 2) for role, v in sorted(shares.items()) if v >= 0.005}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn's workers), in MB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for each in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024
