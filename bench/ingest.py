"""Ingest benchmark: signed ~3 KB ``payment_intent.succeeded`` events with unique ids, posted by
wrk (2 threads, 32 connections) to ``caisse serve`` (2 uvicorn workers, no job worker, so only
ingest is measured), on SQLite and PostgreSQL, against the ceiling of a bare Starlette endpoint
served the same way. Reports events/s, p50/p99 latency, and acknowledged vs stored counts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

HERE = Path(__file__).parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
PG = os.environ.get("CAISSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
THREADS, CONNECTIONS = 2, 32


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def make_requests(path: Path, n: int, secret: str) -> int:
    """Write ``n`` signed deliveries; returns the body size."""
    from caisse.providers.stripe import simulate
    from caisse.providers.stripe.signature import sign

    # ~3 KB like a real delivery; metadata values are random so the body compresses no better
    # than real JSON would.
    meta = {"caisse_order_id": "ord_bench", "caisse_tenant_id": "ten_bench"}
    meta.update({f"k{i}": secrets.token_hex(24) for i in range(26)})
    base = simulate.build_event("payment_intent.succeeded", livemode=False, metadata=meta)
    now = int(time.time())
    size = 0
    with path.open("w") as out:
        for i in range(n):
            base["id"] = f"evt_bench{now}{i:08d}{secrets.token_hex(2)}"
            body = json.dumps(base, separators=(",", ":"))
            size = len(body)
            out.write(sign(body.encode(), [secret], timestamp=now) + "|" + body + "\n")
    return size


def wrk(url: str, seconds: int, script_args: list[str]) -> dict[str, float]:
    cmd = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
           "-s", str(HERE / "ingest.lua"), url, "--", *script_args]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", text)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rate": rate, "total": total, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "p50": pct("50"), "p99": pct("99"), "socket_errors": errors.group(1) if errors else ""}


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
         "--log-level", "warning", "--no-access-log", "--loop", "uvloop", "--http", "httptools"],
        env=env, cwd=str(HERE if app.startswith("bare_app") else ROOT),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_bare(seconds: int, runs: int, reqfile: Path) -> list[dict[str, float]]:
    port = free_port()
    proc = serve("bare_app:app", port, dict(os.environ))
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        return [wrk(f"http://127.0.0.1:{port}/callbacks/v1.0/stripe/x", seconds,
                    [str(reqfile), str(THREADS)]) for _ in range(runs)]
    finally:
        stop(proc)


def bench_caisse(engine: str, seconds: int, runs: int, n: int, tmp: Path) -> dict[str, Any]:
    data = tmp / f"data-{engine}"
    data.mkdir()
    if engine == "sqlite":
        url = f"sqlite:///{data / 'caisse.db'}"
    else:
        name = f"caisse_bench_{secrets.token_hex(4)}"
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}"
    admin = "cat_bench_" + secrets.token_hex(16)
    env = {**os.environ, "CAISSE_DATA_DIR": str(data), "CAISSE_DATABASE_URL": url,
           "CAISSE_ADMIN_TOKEN": admin, "CAISSE_MASTER_KEY": Fernet.generate_key().decode(),
           "CAISSE_NO_WORKER": "1", "CAISSE_LOG_LEVEL": "WARNING"}
    subprocess.run([str(BIN / "caisse"), "migrate"], env=env, check=True,
                   capture_output=True)
    port = free_port()
    proc = serve("caisse.web.asgi:app", port, env)
    results = []
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base + "/healthz")
        t = httpx.post(base + "/v1/tenants", json={"name": "bench"},
                       headers={"Authorization": f"Bearer {admin}"}).json()
        secret = "whsec_" + secrets.token_urlsafe(24)
        httpx.put(base + "/v1/providers/stripe",
                  headers={"Authorization": f"Bearer {t['api_keys']['test']}"},
                  json={"publishable_key": "pk_test_" + "a" * 24,
                        "secret_key": "sk_test_" + "b" * 24,
                        "webhook_secrets": [secret]}).raise_for_status()
        for _ in range(runs):
            reqfile = tmp / "requests.txt"
            size = make_requests(reqfile, n, secret)
            before = count_events(url)
            r = wrk(f"{base}/callbacks/v1.0/stripe/{t['id']}", seconds,
                    [str(reqfile), str(THREADS)])
            stored = count_events(url) - before
            acked = r["total"] - r["non2xx"]
            r.update({"stored": stored, "acked": acked, "body_bytes": size,
                      "wrapped": r["total"] > n})
            results.append(r)
    finally:
        stop(proc)
    return {"engine": engine, "runs": results}


def count_events(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM inbound_events")).scalar_one())
    finally:
        engine.dispose()


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def main(seconds: int = 10, runs: int = 3, n: int = 120_000) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        reqfile = tmp / "bare.txt"
        make_requests(reqfile, 2000, "whsec_" + "c" * 32)
        bare = bench_bare(seconds, runs, reqfile)
        out: dict[str, Any] = {"bare": {"rate": median([r["rate"] for r in bare]),
                                        "p50": median([r["p50"] for r in bare]),
                                        "p99": median([r["p99"] for r in bare])}}
        for engine in ("sqlite", "postgresql"):
            res = bench_caisse(engine, seconds, runs, n, tmp)
            rs = res["runs"]
            out[engine] = {
                "rate": median([r["rate"] for r in rs]),
                "p50": median([r["p50"] for r in rs]),
                "p99": median([r["p99"] for r in rs]),
                "acked": sum(r["acked"] for r in rs),
                "stored": sum(r["stored"] for r in rs),
                "non2xx": sum(r["non2xx"] for r in rs),
                "body_bytes": rs[0]["body_bytes"],
                "ratio": median([r["rate"] for r in rs]) / out["bare"]["rate"],
            }
    return out


if __name__ == "__main__":
    secs = int(os.environ.get("BENCH_SECONDS", "10"))
    print(json.dumps(main(seconds=secs, runs=int(os.environ.get("BENCH_RUNS", "3"))), indent=2))
