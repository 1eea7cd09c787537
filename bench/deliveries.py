"""Partner webhook figures, on SQLite and PostgreSQL (one JSON object per engine on stdout).

- ``deliveries_per_s``: one worker (the ``caisse worker`` loop, in process) drains a backlog of
  messages to one fast loopback receiver (its own process, ``bench/receiver.py``); every
  delivery signed, sent, and its attempt logged.
- ``latency_ms`` p50/p99: Stripe ``payment_intent.succeeded`` events posted, signed, at a steady
  200 events/s (and 50/s) to a live ``caisse serve`` in its own process (alone, or beside a
  render lane ``caisse worker --render --nice 10``): ``WARMUP`` seconds, then the ``SECONDS``
  measured; the receiver stamps each ``order.paid`` arrival; latency = arrival − the moment
  the event was posted; a delivery missing 15 s after the last post is a miss, ranked slower
  than every arrival. The warm-up's own figures are kept too (``with_warmup``: the whole run).

Run: ``.venv/bin/python bench/deliveries.py [sqlite|postgresql ...]`` (needs PostgreSQL at
``CAISSE_TEST_PG`` for the second engine). ``main()`` is what ``bench/run.py`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.receiver import Receiver
from tests.conftest import make_settings
from tests.support.api import new_merchant, order_body, order_meta
from tests.support.servers import free_port, localstripe_process, wait_http

from caisse.config import Settings
from caisse.delivery import signing
from caisse.jobs.worker import Worker, run_loop
from caisse.orders import messages
from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage.migrate import upgrade
from caisse.tenants import services as tenants

BACKLOG = 2000
RATES = tuple(
    int(r) for r in os.environ.get("BENCH_RATES", "200,50").split(",")
)  # the figure, and one this machine sustains with invoices on
SECONDS = 10  # of steady load per run, measured
WARMUP = 2  # seconds of the same load first, their figures reported apart: a fresh process's
# first events meet cold caches (statements compiled, then prepared by the driver)
DRAIN = 15.0  # seconds after the last post before a delivery counts as missed
BIN = Path(sys.executable).parent
PG = os.environ.get("CAISSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def database(engine: str, tmp: Path) -> Iterator[str]:
    if engine == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url
        return
    import psycopg

    name = f"caisse_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def throughput(url: str, tmp: Path) -> float:
    """Deliveries/s from one worker to one fast receiver."""
    rt = Runtime.build(make_settings(tmp, url, allow_private_targets=True))
    try:
        with Receiver() as receiver:
            now = rt.clock.now()
            with rt.db.write() as s:
                tenant, _ = tenants.create_tenant(s, rt.clock, "Bench")
                s.add(
                    m.Endpoint(
                        id="ep_bench",
                        tenant_id=tenant.id,
                        environment="test",
                        url=receiver.url,
                        event_types=[],
                        secrets=[{"secret": rt.box.encrypt(signing.new_secret()),
                                  "created_at": now.isoformat(), "expires_at": None}],
                        status="enabled",
                        created_at=now,
                        updated_at=now,
                    )
                )  # fmt: skip
                s.flush()
                for i in range(BACKLOG):
                    messages.record(s, tenant_id=tenant.id, environment="test", type="order.paid",
                                    data={"order": {"id": f"ord_{i}", "amount_total": 2000}},
                                    order_id=None, now=now)  # fmt: skip

            async def run() -> float:
                stop = asyncio.Event()
                started = time.perf_counter()
                task = asyncio.create_task(Worker(rt).run(stop))
                while await asyncio.to_thread(receiver.count) < BACKLOG:
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                stop.set()
                await task
                return elapsed

            elapsed = run_loop(run())  # the loop `caisse worker` runs
        return BACKLOG / elapsed
    finally:
        rt.close()


def paid(receiver: Receiver) -> int:
    return sum(1 for _, kind, _ in receiver.stats()["arrivals"] if kind == "order.paid")


SETUPS = {
    "one process": "`caisse serve` alone: its worker also renders every invoice",
    "render lane": "`caisse serve --no-render` + `caisse worker --render --nice 10`",
}


@contextlib.contextmanager
def caisse_processes(settings: Settings, stripe_url: str, *, setup: str) -> Iterator[str]:
    """caisse as an operator runs it, in processes of its own (never sharing the bench's
    interpreter lock), laid out as ``SETUPS[setup]`` says. Yields the URL."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")},
        "CAISSE_ENV_FILE": os.devnull,
        "CAISSE_DATA_DIR": str(settings.data_dir),
        "CAISSE_DATABASE_URL": settings.database_url,
        "CAISSE_MASTER_KEY": settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": settings.admin_token.reveal(),
        "CAISSE_STRIPE_API_BASE": stripe_url,
        "CAISSE_ALLOW_PRIVATE_TARGETS": "1",
        "CAISSE_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    caisse = str(BIN / "caisse")
    serve = [caisse, "serve", "--host", "127.0.0.1", "--port", str(port)]
    render = [caisse, "worker", "--render", "--nice", "10"]
    commands = {
        "one process": [serve],
        "render lane": [[*serve, "--no-render"], render],
    }[setup]
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
        for c in commands
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/healthz")
        yield url
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def latency(url: str, tmp: Path, stripe_url: str, rate: int, *, setup: str) -> dict[str, Any]:
    """Provider event → partner delivery latency at a steady ``rate`` events/s: the events of
    the ``SECONDS`` that follow ``WARMUP`` seconds of the same load (``with_warmup``: of the
    whole run, from the process's first event). ``setup`` names how caisse runs (``SETUPS``):
    one ``caisse serve`` doing it all (ingest, processing, invoices, fan-out, delivery), or
    invoices in a render lane at a lower CPU priority. A delivery that has not arrived
    ``DRAIN`` seconds after the last post is a miss, and counts as slower than every arrival
    in the percentiles."""
    settings = make_settings(tmp, url)
    rt = Runtime.build(settings)  # the operator token and master key the processes share
    warm = rate * WARMUP
    total = warm + rate * SECONDS
    try:
        with (
            Receiver() as receiver,
            caisse_processes(settings, stripe_url, setup=setup) as base,
            httpx.Client(base_url=base, timeout=30) as http,
        ):
            merchant = new_merchant(http, rt)
            r = http.post("/v1/endpoints", json={"url": receiver.url}, headers=merchant.auth())
            r.raise_for_status()
            orders = make_orders(base, merchant, total)
            bodies = []
            for order in orders:
                event = simulate.build_event(
                    "payment_intent.succeeded", livemode=False,
                    payment_intent_id=order["payment"]["payment_intent"],
                    amount=order["amount_total"], metadata=order_meta(merchant, order),
                )  # fmt: skip
                bodies.append((order["id"], event))
            posted: dict[str, float] = {}
            lock = threading.Lock()

            def post(
                c: httpx.Client, items: list[tuple[str, dict[str, Any]]], offset: int, step: int
            ) -> None:
                for n, (order_id, event) in enumerate(items):
                    due = start + (offset + n * step) / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    body, headers = simulate.signed_delivery(event, [merchant.whsec["test"]])
                    with lock:
                        posted[order_id] = time.monotonic()
                    path = f"/callbacks/v1.0/stripe/{merchant.tenant_id}"
                    c.post(path, content=body, headers=headers).raise_for_status()

            lanes = 16  # open loop: a slow answer must not slow the rate down (Stripe's don't)
            # Clients made and connected before the clock starts: making sixteen at once took
            # both cores for most of a second, a burst the load itself never has.
            clients = [httpx.Client(base_url=base, timeout=30) for _ in range(lanes)]
            for c in clients:
                c.get("/healthz").raise_for_status()
            start = time.monotonic() + 0.2
            threads = [
                threading.Thread(target=post, args=(clients[i], bodies[i::lanes], i, lanes))
                for i in range(lanes)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for c in clients:
                c.close()
            achieved = total / (time.monotonic() - start)
            deadline = time.monotonic() + DRAIN
            while paid(receiver) < total and time.monotonic() < deadline:
                time.sleep(0.05)
            arrived_at = {
                order_id: arrived
                for arrived, kind, order_id in receiver.stats()["arrivals"]
                if kind == "order.paid" and order_id in posted
            }
        warming = {order_id for order_id, _ in bodies[:warm]}
        steady = percentiles(
            [(arrived_at.get(o), t) for o, t in posted.items() if o not in warming]
        )
        return {
            "setup": setup,
            "rate_per_s": rate,
            "achieved_per_s": round(achieved, 1),
            "seconds": SECONDS,
            "warmup_seconds": WARMUP,
            **steady,
            "with_warmup": percentiles([(arrived_at.get(o), t) for o, t in posted.items()]),
        }
    finally:
        rt.close()


def percentiles(pairs: list[tuple[float | None, float]]) -> dict[str, Any]:
    """p50/p99/max of ``(arrival or None, post)`` pairs, in ms; a missing arrival is a miss,
    slower than every arrival (a percentile it reaches is ``None``)."""
    lat = [(arrived - sent) * 1000 for arrived, sent in pairs if arrived is not None]
    missed = len(pairs) - len(lat)
    ranked = sorted(lat) + [float("inf")] * missed

    def pct(q: float) -> float | None:
        value = ranked[min(len(ranked) - 1, int(q * len(ranked)))]
        return None if value == float("inf") else round(value, 1)

    return {
        "events": len(pairs),
        "delivered": len(lat),
        "missed": missed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(max(lat), 1) if lat and not missed else None,
    }


def make_orders(base: str, merchant: Any, n: int) -> list[dict[str, Any]]:
    """``n`` orders (each with its PaymentIntent at localstripe), from a few threads."""
    out: list[dict[str, Any]] = []
    lock = threading.Lock()

    def make(count: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(count):
                r = c.post("/v1/orders", json=order_body(), headers=merchant.auth())
                r.raise_for_status()
                with lock:
                    out.append(r.json())

    threads = [threading.Thread(target=make, args=(n // 8 + (i < n % 8),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main(engines: tuple[str, ...] = ("sqlite", "postgresql")) -> list[dict[str, Any]]:
    """Run both measurements per engine; prints and returns one JSON object per engine."""
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir, localstripe_process() as stripe_url:
        tmp = Path(tmp_dir)
        for engine in engines:
            with database(engine, tmp) as url:
                per_s = throughput(url, tmp)
            lat = []
            for rate in RATES:
                for setup in os.environ.get("BENCH_SETUPS", ",".join(SETUPS)).split(","):
                    with database(engine, tmp) as url:
                        lat.append(latency(url, tmp, stripe_url, rate, setup=setup))
            result = {
                "bench": "deliveries",
                "engine": engine,
                "deliveries_per_s": round(per_s, 1),
                "backlog": BACKLOG,
                "latency": lat,
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("sqlite", "postgresql"))
