"""Node's ``oidc-provider`` for bench/oidc_flows.py: installed into bench/.node (gitignored) with npm
on first use, started from ``bench/oidc_provider_baseline.mjs``, signed in once like a browser."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx

from bench._harness import ROOT, free_port

__all__ = ["NODE_DIR", "install_oidc_provider", "node_provider"]

NODE_DIR = ROOT / "bench" / ".node"


def install_oidc_provider() -> str | None:
    """None when ready, else why the baseline cannot run."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm is not installed"
    if (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return None
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "--prefix",
            str(NODE_DIR),
            "oidc-provider@9",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        return "npm could not install oidc-provider: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return None


@contextlib.contextmanager
def node_provider(secret: str, redirect: str, params: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    """(base URL, a signed-in browser's cookie, pid) of oidc-provider on a free port."""
    port = free_port()
    server = NODE_DIR / "server.mjs"  # beside node_modules, where Node resolves the import
    shutil.copyfile(ROOT / "bench" / "oidc_provider_baseline.mjs", server)
    env = {**os.environ, "PORT": str(port), "CLIENT_SECRET": secret, "REDIRECT_URI": redirect}
    process = subprocess.Popen(
        ["node", str(server)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=30) as browser:
            response = browser.get("/auth", params=params)
            while not response.headers["location"].startswith(redirect):
                response = browser.get(response.headers["location"])
            # The session cookies (path /); interaction cookies of other paths are done with.
            cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar if c.path == "/")
        yield base, cookie, process.pid
    finally:
        process.terminate()
        process.wait(10)
