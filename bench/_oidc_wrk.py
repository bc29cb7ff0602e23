"""wrk for the OpenID bench: running it (with the connection split and where the cores went), and
the Lua scripts that drive the token endpoint (a fixed POST; a queue of single-use or rotating
items). ``bench.oidc_flows`` holds the flows; this is only how the load is made and read."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench._harness import CpuShares, ensure_wrk

CONNECTIONS = 32
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_ELAPSED = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def connection_split(url: str, pid: int) -> list[int]:
    """The bench's open connections held by each uvicorn worker, most first ([] with one process).

    With uvicorn's --workers (one shared socket) 32 keep-alive connections were seen split 24/8,
    32/0 and 3/29 between two workers, fixed for the whole run; the workers now have a socket each
    (backend.workers, SO_REUSEPORT) and the kernel spreads them. The split is reported beside every
    two-worker figure, so it can be read as such."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists() or shutil.which("ss") is None:
        return []
    workers = []
    for child in children.read_text().split():
        with contextlib.suppress(OSError):
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
    if len(workers) < 2:
        return []
    port = urlsplit(url).port
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    held = collections.Counter(int(p) for p in re.findall(r"pid=(\d+)", listing))
    return sorted((held.get(w, 0) for w in workers), reverse=True)


def run_wrk(url: str, script: str, *, seconds: float, pid: int | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    duration = f"-d{max(1, round(seconds))}s"
    command = [ensure_wrk(), "-t1", f"-c{CONNECTIONS}", duration, "--latency", "-s", handle.name, url]
    shares = CpuShares(pid) if pid is not None else None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    split: list[int] = []
    if pid is not None and shares is not None:
        shares.start()
        time.sleep(min(1.0, seconds / 2))
        split = connection_split(url, pid)
    assert process.stdout is not None
    with process.stdout:
        output = process.stdout.read()
    # wait4, not wait: wrk's own CPU time (it has exited before the shares are read).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    cores = shares.stop({"wrk": usage.ru_utime + usage.ru_stime}) if shares is not None else None
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, output)
    Path(handle.name).unlink()
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = float(total.group(1)) if total else 0.0
    elapsed = float(total.group(2)) * _ELAPSED[total.group(3)] if total else float(seconds)
    result: dict[str, Any] = {"requests": requests, "seconds": round(elapsed, 2)}
    if split:
        result["connections_per_worker"] = split
    if cores:
        result["cores_used"] = cores  # where the 2 cores went during the run (bench._harness.CpuShares)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    result["ok_rps"] = (requests - result["non_2xx"]) / max(elapsed, 1e-3)
    flows, failed = re.search(r"^flows (\d+)$", output, re.M), re.search(r"^failed (\d+)$", output, re.M)
    if flows and failed:  # a flow script (flow_script): two requests a flow
        result["flows"], result["failed"] = int(flows.group(1)), int(failed.group(1))
        result["ok_rps"] = result["flows"] / max(elapsed, 1e-3)
    result["load_average"] = round(os.getloadavg()[0], 2)  # right after this run
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match:
            result[f"p{percentile}_ms"] = float(match.group(1)) * _UNITS[match.group(2)]
    return result


def static_post(body: str, auth: str) -> str:
    return f"""
wrk.method = "POST"
wrk.body = {json.dumps(body)}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = {json.dumps(auth)}
"""


def form_headers(auth: str) -> str:
    """A Lua table of a form POST's headers."""
    form = json.dumps("application/x-www-form-urlencoded")
    return f"""{{["Content-Type"]={form}, ["Authorization"]={json.dumps(auth)}}}"""


def queue_script(items: list[str], body_format: str, auth: str, *, refill: bool) -> str:
    """Each request takes the next item; with ``refill`` the answer's refresh_token goes back.

    A head and a tail index, not ``table.remove(queue, 1)``, which shifted the whole table (20,000
    codes) on every request in wrk's one thread, on the cores the servers use. Items used once
    (codes) have their whole requests formatted in ``init``, before the clock starts: formatting
    each in ``request()`` cost wrk about 6 µs of CPU a request (35 → 29 µs measured at two
    workers), on the cores the workers use."""
    lua_items = ",".join(json.dumps(i) for i in items)
    headers = form_headers(auth)
    if not refill:
        return f"""
queue = {{{lua_items}}}
head, tail = 1, #queue
init = function(args)
  for i = 1, tail do
    queue[i] = wrk.format("POST", nil, {headers}, string.format({json.dumps(body_format)}, queue[i]))
  end
  exhausted = wrk.format("POST", nil, {headers}, string.format({json.dumps(body_format)}, "exhausted"))
end
request = function()
  local item = queue[head]
  if not item then return exhausted end
  queue[head] = nil
  head = head + 1
  return item
end
"""
    return f"""
queue = {{{lua_items}}}
head, tail = 1, #queue
request = function()
  local item = queue[head] or "exhausted"
  if head <= tail then
    queue[head] = nil
    head = head + 1
  end
  return wrk.format("POST", nil, {headers}, string.format({json.dumps(body_format)}, item))
end
response = function(status, headers, body)
  local t = string.match(body, '"refresh_token":"([^"]+)"')
  if t then
    tail = tail + 1
    queue[tail] = t
  end
end
"""
