"""Partner webhook figures, on SQLite and PostgreSQL (one JSON object per engine on stdout).

- ``deliveries_per_s``: one worker (the ``caisse worker`` loop, in process) drains a backlog of
  messages to one fast loopback receiver (its own process, ``bench/receiver.py``); every
  delivery signed, sent, and its attempt logged.
- ``latency_ms`` p50/p99: Stripe ``payment_intent.succeeded`` events posted, signed, at a steady
  200 events/s to a live caisse (uvicorn on loopback, in-process worker); the receiver stamps
  each ``order.paid`` arrival; latency = arrival − the moment the event was posted.

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
from tests.support.servers import live_caisse, localstripe_process

from caisse.delivery import signing
from caisse.jobs.worker import Worker
from caisse.orders import messages
from caisse.providers.stripe import simulate
from caisse.config import Settings
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage.migrate import upgrade
from caisse.tenants import services as tenants

BACKLOG = 2000
RATES = (200, 50)  # the figure, and a rate one process sustains on a small machine
EVENTS = 400
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

            elapsed = asyncio.run(run())
        return BACKLOG / elapsed
    finally:
        rt.close()


def paid(receiver: Receiver) -> int:
    return sum(1 for _, kind, _ in receiver.stats()["arrivals"] if kind == "order.paid")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def delivery_lane(rt: Runtime) -> Iterator[None]:
    """The server's own worker, limited to events and partner deliveries (a thread)."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            holder["loop"], holder["stop"] = asyncio.get_running_loop(), stop
            ready.set()
            await Worker(rt, kinds=("deliver", "reconcile")).run(stop)

        asyncio.run(main())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(timeout=30)


@contextlib.contextmanager
def render_lane(settings: Settings) -> Iterator[None]:
    """``caisse worker`` for invoices and their emails, in its own process."""
    env = {
        **os.environ,
        "CAISSE_DATA_DIR": str(settings.data_dir),
        "CAISSE_DATABASE_URL": settings.database_url,
        "CAISSE_MASTER_KEY": settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": settings.admin_token.reveal(),
        "CAISSE_LOG_LEVEL": "WARNING",
    }
    kinds = ("issue_invoice", "issue_credit_note", "send_invoice_email")
    args = [str(BIN / "caisse"), "worker", "--no-events"]
    for kind in kinds:
        args += ["--kind", kind]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def latency(url: str, tmp: Path, stripe_url: str, rate: int, *, split: bool) -> dict[str, Any]:
    """Provider event → partner delivery latency at a steady ``rate`` events/s. One process
    does it all (ingest, processing, invoices, fan-out, delivery), or, with ``split``, a
    second ``caisse worker`` process renders the invoices (the deployment for such rates)."""
    settings = make_settings(tmp, url, allow_private_targets=True, stripe_api_base=stripe_url,
                             worker_poll_interval=0.5)  # fmt: skip
    rt = Runtime.build(settings)
    total = EVENTS
    try:
        with (
            Receiver() as receiver,
            render_lane(settings) if split else contextlib.nullcontext(),
            live_caisse(rt, run_worker=not split) as live,
            delivery_lane(rt) if split else contextlib.nullcontext(),
            httpx.Client(base_url=live.url, timeout=30) as http,
        ):
            merchant = new_merchant(http, rt)
            r = http.post("/v1/endpoints", json={"url": receiver.url}, headers=merchant.auth())
            r.raise_for_status()
            orders = []
            for _ in range(total):
                r = http.post("/v1/orders", json=order_body(), headers=merchant.auth())
                r.raise_for_status()
                orders.append(r.json())
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

            def post(items: list[tuple[str, dict[str, Any]]], offset: int, step: int) -> None:
                with httpx.Client(base_url=live.url, timeout=30) as c:
                    for n, (order_id, event) in enumerate(items):
                        due = start + (offset + n * step) / rate
                        time.sleep(max(0.0, due - time.monotonic()))
                        body, headers = simulate.signed_delivery(event, [merchant.whsec["test"]])
                        with lock:
                            posted[order_id] = time.monotonic()
                        path = f"/callbacks/v1.0/stripe/{merchant.tenant_id}"
                        c.post(path, content=body, headers=headers).raise_for_status()

            lanes = 4
            start = time.monotonic() + 0.2
            threads = [
                threading.Thread(target=post, args=(bodies[i::lanes], i, lanes))
                for i in range(lanes)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            deadline = time.monotonic() + 15
            while paid(receiver) < total and time.monotonic() < deadline:
                time.sleep(0.05)
            lat = [
                (arrived - posted[order_id]) * 1000
                for arrived, kind, order_id in receiver.stats()["arrivals"]
                if kind == "order.paid" and order_id in posted
            ]
        return {
            "setup": "two processes (render lane)" if split else "one process",
            "events": total,
            "delivered": len(lat),
            "rate_per_s": rate,
            # over the deliveries that arrived within 15 s of the last post (see "delivered")
            "p50_ms": round(_percentile(lat, 0.50), 1) if lat else None,
            "p99_ms": round(_percentile(lat, 0.99), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None,
        }
    finally:
        rt.close()


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
                for split in (False, True):
                    with database(engine, tmp) as url:
                        lat.append(latency(url, tmp, stripe_url, rate, split=split))
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
