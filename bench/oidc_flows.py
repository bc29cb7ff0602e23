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
import contextlib
import hashlib
import json
import os
import re
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
    emit,
    parallel_capacity,
    rss_mb,
    service_env,
    services,
    two_worker_ceiling,
    uvicorn_server,
)
from bench._oidc_baseline import install_oidc_provider, node_provider
from bench._oidc_wrk import CONNECTIONS, form_headers, queue_script, run_wrk, static_post

NAME = "oidc_flows"
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


def worker_rss_mb(pid: int) -> float:
    """The largest resident set among uvicorn's workers (the process itself with one worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return max(rss_mb(p) for p in pids) if pids else rss_mb(pid)


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
    return wrk.format("POST", {json.dumps(target.token)}, {form_headers(target.auth)},
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
                fields.update(two_worker_ceiling(ours[1][metric]))
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
        browser = ""
        for workers in [int(w) for w in args.workers.split(",")]:
            app = "backend.asgi:create_app_from_env"
            base, process = stack.enter_context(uvicorn_server(app, env, factory=True, workers=workers))
            if not browser:  # one person, one signed-in browser: the servers share Redis and PostgreSQL
                browser = asyncio.run(setup(base, url.reveal()))
            targets[workers] = Target(
                "citizen", base, "/oidc/authorize", "/oidc/token", "/oidc/introspect", browser, process.pid
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
