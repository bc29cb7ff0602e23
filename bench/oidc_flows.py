"""The OpenID provider's flows on one worker and on two, beside Node's ``oidc-provider`` (issue 4).

Measured with wrk (Lua scripts for POST bodies; refresh tokens rotate, so each connection carries
its own family forward; codes are minted beforehand through the authorization endpoint with a
signed-in browser's cookie and used once): client credentials, code exchange, refresh (each per second
and p99), introspection per second, and the full code flow (authorize with the signed-in cookie,
then the code's exchange, on one connection) per second, also in wrk. Worker RSS after the load,
and with each run the cores each process took (the load generator and the stores share the two
cores with the workers).

Baseline, in the same run: panva's certified ``oidc-provider`` from npm (installed into
bench/.node on first use), started with ``bench/oidc_provider_baseline.mjs`` and driven by the same
scripts; each flow runs on it, on one worker and on two workers back to back (the same machine
state for the three); each one-worker figure is printed with the baseline's and the ratio, each
two-worker one with its ratio to one worker and the machine's parallel capacity of the moment.
oidc-provider's storage is an in-process Map (no network round trip, in its favour) and its
access tokens are opaque (its default); ours are signed JWTs checked against Redis. Without node,
npm or the registry the baseline is null and the line says why.

    python -m bench.oidc_flows [--seconds 8] [--flows cc,introspection,refresh,code,full]
                               [--workers 1,2] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import asyncpg
import httpx

from backend.runtime import migrate_database
from bench._harness import (
    CpuShares,
    emit,
    ensure_wrk,
    parallel_capacity,
    rss_mb,
    service_env,
    services,
    uvicorn_server,
)
from bench._oidc_baseline import install_oidc_provider, node_provider

NAME = "oidc_flows"
CONNECTIONS = 32
REDIRECT = "https://bench.example/cb"
MOBILE = "13800138000"
SECRET = "bench-secret-" + "x" * 30
VERIFIER = "v" * 43 + "bench-verifier"
CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
# Minted for the code exchange run (about 1,300/s, so ~23 s, inside a code's 60 s lifetime with
# the run after it): enough for 7,500/s over CODE_SECONDS (two workers did more than 5,000/s).
CODES = 30000
CODE_SECONDS = 4
FLOWS = ("cc", "introspection", "refresh", "code", "full")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_ELAPSED = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
T = TypeVar("T")


@dataclass(frozen=True)
class Target:
    """One provider under test: where its endpoints are and how the bench's client signs in."""

    name: str
    base: str
    authorize: str
    token: str
    introspect: str
    cookie: str  # a signed-in browser with consent given
    pid: int

    @property
    def auth(self) -> str:
        return "Basic " + base64.b64encode(f"bench:{SECRET}".encode()).decode()


class RawHTTP:
    """One keep-alive HTTP/1.1 connection, written and parsed by hand.

    The code minting needs a client that follows the answer of one request with the next. httpx
    spent about 6 ms of CPU per flow in the bench's own process, on the cores the servers use. This
    one writes the request and reads the status line, the headers and a Content-Length or chunked
    body, nothing more. Both providers are driven by it alike."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._io: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self._io is not None:
            self._io[1].close()
            self._io = None

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self._io is None:
            self._io = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._io
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
        writer.write(f"{method} {target} HTTP/1.1\r\n".encode() + self._host_header)
        writer.write(f"{lines}{length}\r\n".encode() + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            content = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")  # the end of the (empty) trailer
            content = b"".join(chunks)
        else:
            content = b""
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, fields, content

    async def authorize(self, target: Target) -> str:
        """A fresh code from the authorization endpoint (prompt=none, the signed-in cookie)."""
        query = urlencode(authorize_params("none"))
        status, fields, _ = await self.request(
            "GET", f"{target.authorize}?{query}", {"Cookie": target.cookie}
        )
        if status not in (302, 303):
            raise RuntimeError(f"authorize answered {status}")
        return parse_qs(urlsplit(fields["location"]).query)["code"][0]


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, on uvloop when it is installed (the client's own CPU is part of the load)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


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


def worker_rss_mb(pid: int) -> float:
    """The largest resident set among uvicorn's workers (the process itself with one worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return max(rss_mb(p) for p in pids) if pids else rss_mb(pid)


def static_post(body: str, auth: str) -> str:
    return f"""
wrk.method = "POST"
wrk.body = {json.dumps(body)}
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = {json.dumps(auth)}
"""


def _form_headers(auth: str) -> str:
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
    headers = _form_headers(auth)
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


async def setup(base: str, database_url: str) -> str:
    """The bench client, a registered person, and an SSO cookie with consent given."""
    from identity.crypto import token_hash

    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            INSERT INTO identity.oidc_clients (client_id, name, client_type, auth_method, secret_hash,
                redirect_uris, grant_types, scopes)
            VALUES ('bench', 'Bench partner', 'confidential', 'client_secret_basic', $1, $2,
                    '{authorization_code,refresh_token,client_credentials}', '{openid,profile}')
            ON CONFLICT DO NOTHING
            """,
            token_hash(SECRET),
            [REDIRECT],
        )
    finally:
        await connection.close()
    async with httpx.AsyncClient(base_url=base, timeout=30) as browser:
        await browser.post("/api/v1/identity/codes", json={"mobile": MOBILE, "purpose": "register"})
        sms = (await browser.get("/api/v1/identity/dev/sms", params={"mobile": MOBILE, "limit": 1})).json()
        code = re.search(r"(\d{6})", sms[0]["text"])
        assert code
        await browser.post("/api/v1/identity/registrations", json={"mobile": MOBILE, "code": code.group(1)})
        response = await browser.get("/oidc/authorize", params=authorize_params())
        while response.status_code in (200, 303):
            if response.status_code == 303:
                location = response.headers["location"]
                if not location.startswith("/"):
                    break
                response = await browser.get(location)
                continue
            csrf = re.search(r'name="csrf" value="([^"]+)"', response.text)
            action = re.search(r'action="(/oidc/interaction/[^"/]+)/', response.text)
            assert csrf and action
            if "/send-code" in response.text:
                await browser.post(
                    f"{action.group(1)}/send-code", data={"csrf": csrf.group(1), "mobile": MOBILE}
                )
                sms = (
                    await browser.get("/api/v1/identity/dev/sms", params={"mobile": MOBILE, "limit": 1})
                ).json()
                otp = re.search(r"(\d{6})", sms[0]["text"])
                assert otp
                response = await browser.post(
                    f"{action.group(1)}/login",
                    data={"csrf": csrf.group(1), "method": "sms", "mobile": MOBILE, "code": otp.group(1)},
                )
            else:
                response = await browser.post(
                    f"{action.group(1)}/consent", data={"csrf": csrf.group(1), "decision": "allow"}
                )
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    return cookie


def authorize_params(prompt: str | None = None) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "bench",
        "redirect_uri": REDIRECT,
        "scope": "openid profile",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "s",
    }
    if prompt:
        params["prompt"] = prompt
    return params


async def mint_codes(target: Target, count: int) -> list[str]:
    """``count`` fresh codes, fetched over 32 connections."""
    codes: list[str] = []

    async def one_connection(share: int) -> None:
        connection = RawHTTP(target.base)
        try:
            for _ in range(share):
                codes.append(await connection.authorize(target))
        finally:
            await connection.close()

    shares = [count // CONNECTIONS + (1 if i < count % CONNECTIONS else 0) for i in range(CONNECTIONS)]
    await asyncio.gather(*(one_connection(n) for n in shares if n))
    return codes


async def exchange(client: httpx.AsyncClient, target: Target, code: str) -> dict[str, Any]:
    response = await client.post(
        target.token,
        headers={"Authorization": target.auth},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER,
        },
    )
    body: dict[str, Any] = response.json()
    return body


async def tokens(target: Target, count: int) -> list[dict[str, Any]]:
    codes = await mint_codes(target, count)
    async with httpx.AsyncClient(base_url=target.base, timeout=30) as client:
        return [await exchange(client, target, c) for c in codes]


def flow_script(target: Target) -> str:
    """The full code flow in wrk: each connection asks for a code (GET authorize with the signed-in
    cookie, prompt=none) and redeems it (POST token) in its next request, so every flow is two
    requests in order on one connection and is counted when the exchange answers 200.

    wrk, not a Python client: the client shares the two cores with the workers, Redis and
    PostgreSQL, and an asyncio client spent about 190 µs of CPU a flow (a fifth of a core at
    1,200 flows/s) where wrk spends a few tens. ``done`` prints the counts, parsed by ``run_wrk``."""
    authorize = f"{target.authorize}?{urlencode(authorize_params('none'))}"
    body = f"grant_type=authorization_code&code=%s&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
    return f"""
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
init = function(args)
  flows, failed, pending = 0, 0, {{}}
  ask = wrk.format("GET", {json.dumps(authorize)}, {{["Cookie"]={json.dumps(target.cookie)}}})
end
-- wrk writes a connection's next request after reading its answer: the code a connection was
-- just given is the first one waiting (connections answered in between took their own).
request = function()
  local code = table.remove(pending)
  if code then
    return wrk.format("POST", {json.dumps(target.token)}, {_form_headers(target.auth)},
      string.format({json.dumps(body)}, code))
  end
  return ask
end
response = function(status, headers, body)
  if status == 302 or status == 303 then
    local location = headers["Location"] or headers["location"] or ""
    local code = string.match(location, "[?&]code=([^&]+)")
    if code then table.insert(pending, code) else failed = failed + 1 end
  elseif status == 200 then
    flows = flows + 1
  else
    failed = failed + 1
  end
end
done = function(summary, latency, requests)
  local f, x = 0, 0
  for _, t in ipairs(threads) do f = f + t:get("flows"); x = x + t:get("failed") end
  io.write(string.format("flows %d\\nfailed %d\\n", f, x))
end
"""


def measure(target: Target, flows: list[str], seconds: float) -> dict[str, dict[str, Any]]:
    """Every asked-for flow against one target: {metric: {value, p99_ms, ...}}."""
    out: dict[str, dict[str, Any]] = {}
    url = target.base + target.token
    if "cc" in flows:
        cc = static_post("grant_type=client_credentials&scope=profile", target.auth)
        run_wrk(url, cc, seconds=min(2.0, seconds))  # warm-up
        out["client_credentials_rps"] = run_wrk(url, cc, seconds=seconds, pid=target.pid)
        out["worker_rss"] = {"ok_rps": worker_rss_mb(target.pid), "all_processes_mb": rss_mb(target.pid)}
    if "introspection" in flows:
        access = asyncio.run(tokens(target, 1))[0]["access_token"]
        script = static_post(f"token={access}", target.auth)
        out["introspection_rps"] = run_wrk(
            target.base + target.introspect, script, seconds=seconds, pid=target.pid
        )
    if "refresh" in flows:
        families = [t["refresh_token"] for t in asyncio.run(tokens(target, CONNECTIONS * 2))]
        script = queue_script(families, "grant_type=refresh_token&refresh_token=%s", target.auth, refill=True)
        out["refresh_rps"] = run_wrk(url, script, seconds=seconds, pid=target.pid)
    if "code" in flows:
        # Minted just before use: every code must still be inside its 60 s lifetime when wrk
        # reaches it. wrk always runs its full duration, so the run is kept short enough for the
        # codes to last; if they ran out, the rate is a lower bound and the line says so.
        minting = time.perf_counter()
        codes = run_async(mint_codes(target, CODES))
        minted_in = time.perf_counter() - minting
        body = f"grant_type=authorization_code&code=%s&redirect_uri={REDIRECT}&code_verifier={VERIFIER}"
        script = queue_script(codes, body, target.auth, refill=False)
        result = run_wrk(url, script, seconds=CODE_SECONDS, pid=target.pid)
        result["codes_available"] = len(codes)
        result["codes_minted_in_s"] = round(minted_in, 1)
        result["codes_ran_out"] = result["requests"] > len(codes)
        out["code_exchange_rps"] = result
    if "full" in flows:
        script = flow_script(target)
        run_wrk(target.base, script, seconds=min(2.0, seconds))  # warm-up
        result = run_wrk(target.base, script, seconds=seconds, pid=target.pid)
        if result.get("failed", 1) or result["non_2xx"]:
            raise RuntimeError(f"{target.name}: full flows failed: {result}")
        out["full_code_flow_rps"] = result  # p50/p99: of the two requests, not of the flow
    return out


# -- the run ---------------------------------------------------------------------------------------

_TARGETS = {
    "client_credentials_rps": ">= 3000/s, p99 <= 20 ms (one worker)",
    "introspection_rps": ">= 8000/s (one worker)",
    "refresh_rps": ">= 3000/s, p99 <= 20 ms (one worker)",
    "code_exchange_rps": ">= 3000/s, p99 <= 20 ms (one worker)",
    "full_code_flow_rps": None,
    "worker_rss": "<= 200 MB per worker",
}


def report(
    ours: dict[int, dict[str, dict[str, Any]]], baseline: dict[str, dict[str, Any]], why: str | None
) -> None:
    for workers, results in ours.items():
        for metric, result in results.items():
            unit = "MB" if metric == "worker_rss" else ("flows/s" if metric.startswith("full") else "req/s")
            extra = {k: v for k, v in result.items() if k not in {"ok_rps", "requests"}}
            fields: dict[str, Any] = {"workers": workers, "connections": CONNECTIONS, **extra}
            base = baseline.get(metric) if workers == 1 and metric != "worker_rss" else None
            fields["baseline"] = "oidc-provider (npm), one node process" if base else None
            fields["baseline_value"] = round(base["ok_rps"], 1) if base else None
            if base:
                fields["baseline_p99_ms"] = base.get("p99_ms")
                fields["baseline_load_average"] = base.get("load_average")
            elif workers == 1 and why and metric != "worker_rss":
                fields["baseline_missing"] = why
            if workers == 2 and metric in ours.get(1, {}) and metric != "worker_rss":
                fields["two_over_one"] = round(result["ok_rps"] / max(ours[1][metric]["ok_rps"], 1e-9), 2)
                fields["target_two_over_one"] = ">= 1.7"
            if _TARGETS.get(metric):
                fields["target"] = _TARGETS[metric]
            fields.setdefault("load_average", round(os.getloadavg()[0], 2))
            emit(NAME, metric, result["ok_rps"], unit, **fields)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.oidc_flows")
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run (default 8)")
    parser.add_argument("--flows", default=",".join(FLOWS), help="any of " + ",".join(FLOWS))
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument("--no-baseline", action="store_true", help="skip oidc-provider")
    args = parser.parse_args()
    flows = [f for f in args.flows.split(",") if f in FLOWS]
    baseline: dict[str, dict[str, Any]] = {}
    why = "not asked for (--no-baseline)" if args.no_baseline else install_oidc_provider()
    ours: dict[int, dict[str, dict[str, Any]]] = {}
    with contextlib.ExitStack() as stack:
        node: Target | None = None
        if why is None:
            base, cookie, pid = stack.enter_context(node_provider(SECRET, REDIRECT, authorize_params()))
            node = Target("oidc-provider", base, "/auth", "/token", "/token/introspection", cookie, pid)
        resolved = stack.enter_context(services())
        asyncio.run(migrate_database(resolved.settings))
        url = resolved.settings.database.url
        assert url is not None
        # Every server runs from the start (an idle one costs nothing) and each flow is measured on
        # the baseline, one worker and two workers back to back: the host's spare capacity drifts
        # over minutes, and a ratio of runs minutes apart measured the drift as much as the workers.
        env = service_env(resolved, CITIZEN_LOG_LEVEL="WARNING", CITIZEN_OIDC_ISSUER="http://bench.local")
        targets: dict[int, Target] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            app = "backend.asgi:create_app_from_env"
            base, process = stack.enter_context(uvicorn_server(app, env, factory=True, workers=workers))
            if not targets:  # one person, one signed-in browser: the servers share Redis and PostgreSQL
                cookie = asyncio.run(setup(base, url.reveal()))
            targets[workers] = Target(
                "citizen", base, "/oidc/authorize", "/oidc/token", "/oidc/introspect", cookie, process.pid
            )
            ours[workers] = {}
        for flow in flows:
            if node is not None:
                baseline.update(measure(node, [flow], args.seconds))
            for workers, target in targets.items():
                capacity = parallel_capacity() if workers > 1 else None
                measured = measure(target, [flow], args.seconds)
                for result in measured.values():
                    if capacity is not None:
                        result["machine_parallel_capacity"] = capacity
                ours[workers].update(measured)
    baseline.pop("worker_rss", None)
    report(ours, baseline, why)


if __name__ == "__main__":
    main()
