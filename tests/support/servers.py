"""Real servers on loopback for tests: caisse itself (uvicorn in a thread) and localstripe
(a child process, as a merchant's Stripe would be another machine)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn

from caisse.runtime import Runtime
from caisse.web.app import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@dataclass
class LiveCaisse:
    url: str
    rt: Runtime
    server: uvicorn.Server


@contextlib.contextmanager
def live_caisse(
    rt: Runtime, *, run_worker: bool = True, proxy_headers: bool = True
) -> Iterator[LiveCaisse]:
    """``proxy_headers=False`` serves as ``caisse serve`` does without CAISSE_TRUSTED_PROXIES:
    uvicorn leaves X-Forwarded-For alone and caisse's own trusted-proxy rules decide."""
    port = free_port()
    app = create_app(runtime=rt, run_worker=run_worker)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            lifespan="on",
            proxy_headers=proxy_headers,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield LiveCaisse(url, rt, server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def localstripe_process() -> Iterator[str]:
    port = free_port()
    code = "import sys; from localstripe.server import start; sys.exit(start())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v1/balance")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
