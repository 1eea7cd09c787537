"""Ingest benchmark: signed ~3 KB ``payment_intent.succeeded`` events with unique ids, posted by
wrk (2 threads, 64 connections) to caisse (one uvicorn worker, uvloop + httptools, no access
log, no job worker, so only ingest is measured), on SQLite and PostgreSQL, against the ceiling:
a bare Starlette endpoint that reads the body and answers 200, served by the same uvicorn with
the same options.

The machine is shared by the load generator, the server and the database, and often by other
work, so absolute figures move from run to run. Each caisse run is therefore paired with a
ceiling run just before it, and the ratio is taken per pair (then the median): that ratio is
the figure to compare. Reports events/s, p50/p99 latency, acknowledged (200) vs stored rows
(stored may exceed acked by the requests in flight when wrk stopped; acked above stored would
be a lost event), and the load average around the runs.

``python bench/ingest.py`` prints JSON; ``BENCH_SECONDS``, ``BENCH_RUNS``, ``BENCH_CONNECTIONS``
and ``BENCH_WORKERS`` override the defaults (5 s, 3 runs, 64 connections, 1 worker).
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cryptography.fernet import Fernet

HERE = Path(__file__).parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
PG = os.environ.get("CAISSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
THREADS = 2
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
MAX_RATE = 12_000  # events/s a request file is sized for, so that no id repeats in a run
UVICORN_OPTIONS = [
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


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
    """Write ``n`` signed deliveries, each with its own event id; returns the body size."""
    from caisse.providers.stripe import simulate
    from caisse.providers.stripe.signature import sign

    # ~3 KB like a real delivery; metadata values are random so the body compresses no better
    # than real JSON would.
    meta = {"caisse_order_id": "ord_bench", "caisse_tenant_id": "ten_bench"}
    meta.update({f"k{i}": secrets.token_hex(24) for i in range(26)})
    base = simulate.build_event("payment_intent.succeeded", livemode=False, metadata=meta)
    now = int(time.time())
    tag = secrets.token_hex(3)
    size = 0
    with path.open("w") as out:
        for i in range(n):
            base["id"] = f"evt_bench{tag}{i:08d}"
            body = json.dumps(base, separators=(",", ":"))
            size = len(body)
            out.write(sign(body.encode(), [secret], timestamp=now) + "|" + body + "\n")
    return size


def wrk(url: str, seconds: int, reqfile: Path) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(HERE / "ingest.lua"),
        url,
        "--",
        str(reqfile),
        str(THREADS),
    ]
    before = load()
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # noqa: S603
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", text)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rate": rate,
        "total": total,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50": pct("50"),
        "p99": pct("99"),
        "socket_errors": errors.group(1) if errors else "",
        "load": [before, load()],
    }


@contextmanager
def serve(app: str, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``uvicorn app`` with the options every target gets; yields its base URL."""
    port = free_port()
    cmd = [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--port", str(port)]
    if WORKERS > 1:
        cmd += ["--workers", str(WORKERS)]
    proc = subprocess.Popen(  # noqa: S603
        cmd + UVICORN_OPTIONS,
        env=env,
        cwd=str(cwd),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def database(engine: str, data: Path) -> str:
    if engine == "sqlite":
        return f"sqlite:///{data / 'caisse.db'}"
    name = f"caisse_bench_{secrets.token_hex(4)}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}"


def drop_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_events(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM inbound_events")).scalar_one())
    finally:
        engine.dispose()


def bench_engine(
    engine: str, bare_url: str, bare_requests: Path, seconds: int, runs: int, tmp: Path
) -> dict[str, Any]:
    data = tmp / f"data-{engine}"
    data.mkdir()
    url = database(engine, data)
    admin = "cat_bench_" + secrets.token_hex(16)
    env = {
        **os.environ,
        "CAISSE_DATA_DIR": str(data),
        "CAISSE_DATABASE_URL": url,
        "CAISSE_ADMIN_TOKEN": admin,
        "CAISSE_MASTER_KEY": Fernet.generate_key().decode(),
        "CAISSE_NO_WORKER": "1",
        "CAISSE_LOG_LEVEL": "WARNING",
    }
    subprocess.run([str(BIN / "caisse"), "migrate"], env=env, check=True, capture_output=True)  # noqa: S603
    pairs: list[dict[str, Any]] = []
    try:
        with serve("caisse.web.asgi:app", env, ROOT) as base:
            wait_up(base + "/healthz")
            tenant = httpx.post(
                base + "/v1/tenants",
                json={"name": "bench"},
                headers={"Authorization": f"Bearer {admin}"},
            ).json()
            secret = "whsec_" + secrets.token_urlsafe(24)
            httpx.put(
                base + "/v1/providers/stripe",
                headers={"Authorization": f"Bearer {tenant['api_keys']['test']}"},
                json={
                    "publishable_key": "pk_test_" + "a" * 24,
                    "secret_key": "sk_test_" + "b" * 24,
                    "webhook_secrets": [secret],
                },
            ).raise_for_status()
            target = f"{base}/callbacks/v1.0/stripe/{tenant['id']}"
            reqfile = tmp / f"requests-{engine}.txt"
            for i in range(runs + 1):  # the first pair warms both servers up and is dropped
                n = MAX_RATE * seconds
                size = make_requests(reqfile, n, secret)
                ceiling = wrk(f"{bare_url}/callbacks/v1.0/stripe/x", seconds, bare_requests)
                before = count_events(url)
                r = wrk(target, seconds, reqfile)
                r["stored"] = count_events(url) - before
                r["acked"] = r["total"] - r["non2xx"]
                r["wrapped"] = r["total"] > n  # ids repeated: duplicates store nothing
                r["body_bytes"] = size
                r["ceiling"] = ceiling
                r["ratio"] = r["rate"] / ceiling["rate"]
                log(
                    f"{engine} run {i}: {r['rate']:.0f}/s vs ceiling {ceiling['rate']:.0f}/s "
                    f"= {r['ratio']:.2f}; acked {r['acked']} stored {r['stored']}; "
                    f"load {r['load']}"
                )
                if i:
                    pairs.append(r)
    finally:
        drop_database(url)
    return summarise(pairs)


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    acked = sum(r["acked"] for r in runs)
    stored = sum(r["stored"] for r in runs)
    return {
        "rate": median([r["rate"] for r in runs]),
        "p50": median([r["p50"] for r in runs]),
        "p99": median([r["p99"] for r in runs]),
        "acked": acked,
        "stored": stored,
        "lost": max(0, acked - stored),
        "non2xx": sum(r["non2xx"] for r in runs),
        "body_bytes": runs[0]["body_bytes"],
        "ceiling": median([r["ceiling"]["rate"] for r in runs]),
        "ratio": median([r["ratio"] for r in runs]),
        "ratios": [round(r["ratio"], 3) for r in runs],
        "load": [r["load"] for r in runs],
        "wrapped": any(r["wrapped"] for r in runs),
        "ceilings": [r.pop("ceiling") for r in runs],
        "runs": runs,
    }


def main(seconds: int = 5, runs: int = 3) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    out: dict[str, Any] = {
        "settings": {
            "wrk": f"-t{THREADS} -c{CONNECTIONS} -d{seconds}s",
            "uvicorn": f"{WORKERS} worker(s), " + " ".join(UVICORN_OPTIONS),
            "runs": runs,
        }
    }
    with tempfile.TemporaryDirectory() as d, serve("bare_app:app", dict(os.environ), HERE) as bare:
        tmp = Path(d)
        wait_up(bare + "/")
        bare_requests = tmp / "bare.txt"  # the ceiling ignores ids: a small file will do
        make_requests(bare_requests, 2000, "whsec_" + "c" * 32)
        ceilings: list[dict[str, Any]] = []
        for engine in ("sqlite", "postgresql"):
            out[engine] = bench_engine(engine, bare, bare_requests, seconds, runs, tmp)
            ceilings += out[engine].pop("ceilings")
        out["bare"] = {
            "rate": median([c["rate"] for c in ceilings]),
            "p50": median([c["p50"] for c in ceilings]),
            "p99": median([c["p99"] for c in ceilings]),
        }
    return out


if __name__ == "__main__":
    result = main(
        seconds=int(os.environ.get("BENCH_SECONDS", "5")),
        runs=int(os.environ.get("BENCH_RUNS", "3")),
    )
    print(json.dumps(result, indent=2))
