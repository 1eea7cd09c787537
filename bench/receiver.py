"""A fast partner for the delivery benchmark, in its own process (it must not share the
worker's interpreter lock, or the figure would measure both). It answers every POST with 200
at once and stamps each arrival with ``time.monotonic()``, which is the same clock in every
process of the machine; ``GET /_stats`` returns
``{"count": n, "arrivals": [[t, type, order_id], …]}``, ``GET /_count`` only the count (what
the bench polls while a worker drains: the whole list, decoded in the worker's process every
50 ms, used to take a sixth of that process's time).

Run as ``python bench/receiver.py PORT``; ``Receiver`` starts and stops it from the bench.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

_ARRIVALS: list[tuple[float, str | None, str | None]] = []


def _what(body: bytes) -> tuple[str | None, str | None]:
    """(message type, order id) of a delivery, when it has them."""
    try:
        message = json.loads(body)
        return str(message["type"]), str(message["data"]["order"]["id"])
    except (ValueError, KeyError, TypeError):
        return None, None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if scope["method"] == "GET" and scope["path"] == "/_count":
        out = b"%d" % len(_ARRIVALS)
    elif scope["method"] == "GET":
        out = json.dumps({"count": len(_ARRIVALS), "arrivals": _ARRIVALS}).encode()
    else:
        _ARRIVALS.append((time.monotonic(), *_what(bytes(body))))
        out = b'{"received":true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(out)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": out})


class Receiver:
    """The receiver process; ``url`` takes deliveries, ``stats()`` reads what arrived."""

    def __init__(self) -> None:
        from tests.support.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=10)  # one client: building one costs ~10 ms of TLS set-up

    def __enter__(self) -> Receiver:
        self._proc = subprocess.Popen([sys.executable, __file__, str(self.port)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.stats()
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("the bench receiver did not start")

    def stats(self) -> dict[str, Any]:
        r = self._http.get(f"http://127.0.0.1:{self.port}/_stats")
        r.raise_for_status()
        return dict(r.json())

    def count(self) -> int:
        r = self._http.get(f"http://127.0.0.1:{self.port}/_count")
        r.raise_for_status()
        return int(r.content)

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


if __name__ == "__main__":
    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
