"""Exactly once under concurrency, on PostgreSQL: parallel duplicate deliveries to a live
caisse, two workers draining at once, and two events for one order processed at the same time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from tests.conftest import make_settings
from tests.support.api import (
    Merchant,
    create_order,
    new_merchant,
    order_event,
    wait_for,
)
from tests.support.servers import LiveCaisse, live_caisse

from caisse.errors import Conflict
from caisse.jobs.worker import Worker
from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage import orders as order_store


@pytest.fixture
def pg_rt(tmp_path: Path, pg_url: str, localstripe_url: str) -> Iterator[Runtime]:
    runtime = Runtime.build(make_settings(tmp_path, pg_url, stripe_api_base=localstripe_url))
    yield runtime
    runtime.close()


@pytest.fixture
def live(pg_rt: Runtime) -> Iterator[LiveCaisse]:
    with live_caisse(pg_rt, run_worker=False) as server:
        yield server


@pytest.fixture
def shop(live: LiveCaisse, pg_rt: Runtime) -> tuple[Merchant, dict[str, Any]]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        merchant = new_merchant(http, pg_rt)
        return merchant, create_order(http, merchant)


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.db.read() as s:
        stmt = select(func.count()).select_from(model)
        for clause in where:
            stmt = stmt.where(clause)
        return int(s.execute(stmt).scalar_one())


def deliver_in_parallel(url: str, deliveries: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    """Each delivery from its own thread and connection, released together."""
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(deliveries))

    def send(body: bytes, headers: dict[str, str]) -> None:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            r = http.post(url, content=body, headers=headers)
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=send, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


def drain_with_two_workers(rt: Runtime) -> None:
    async def both() -> None:
        await asyncio.gather(
            Worker(rt, worker_id="worker-a", batch=1).drain(),
            Worker(rt, worker_id="worker-b", batch=1).drain(),
        )

    asyncio.run(both())


def timeline_count(rt: Runtime, order_id: str, type_: str) -> int:
    return count(rt, m.OrderEvent, m.OrderEvent.order_id == order_id, m.OrderEvent.type == type_)


class TwoWorkers:
    """Two workers running (``Worker.run``, as ``caisse worker`` does) in their own thread and
    event loop, claiming while the deliveries are still arriving."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def both() -> None:
            self.stop = asyncio.Event()
            self.ready.set()
            await asyncio.gather(
                Worker(self.rt, worker_id="worker-a", batch=1).run(self.stop),
                Worker(self.rt, worker_id="worker-b", batch=1).run(self.stop),
            )

        self.loop.run_until_complete(both())

    def __enter__(self) -> TwoWorkers:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_twenty_parallel_copies_have_one_effect_with_two_workers(live, pg_rt, shop) -> None:  # type: ignore[no-untyped-def]
    merchant, order = shop
    ev = order_event(merchant, order, "payment_intent.succeeded")
    delivery = simulate.signed_delivery(ev, [merchant.whsec["test"]])
    url = f"{live.url}/callbacks/v1.0/stripe/{merchant.tenant_id}"

    with TwoWorkers(pg_rt):  # both claim while the copies are still arriving
        statuses = deliver_in_parallel(url, [delivery] * 20)

        def processed() -> bool:
            with pg_rt.db.read() as s:
                return s.scalars(select(m.InboundEvent.status)).all() == ["processed"]

        wait_for(processed, timeout=30)

    assert statuses == [200] * 20
    assert count(pg_rt, m.InboundEvent) == 1
    assert count(pg_rt, m.Message, m.Message.type == "order.paid") == 1
    assert timeline_count(pg_rt, order["id"], "order.paid") == 1
    with pg_rt.db.read() as s:
        stored = s.scalars(select(m.InboundEvent)).one()
        row = s.get(m.Order, order["id"])
    assert stored.attempts == 1  # claimed and applied once, by one of the two
    assert row is not None
    assert row.status == "paid"
    assert row.amount_paid == order["amount_total"]


def test_two_events_for_one_order_processed_at_once_end_correct(live, pg_rt, shop) -> None:  # type: ignore[no-untyped-def]
    """Both workers load the order at once. The load takes the row lock, so the second waits
    for the first to commit and folds its snapshot into the new state; the version guard is
    the backstop (see the next test). An outside lock on the order holds both workers at the
    same point so they really do meet."""
    merchant, order = shop
    url = f"{live.url}/callbacks/v1.0/stripe/{merchant.tenant_id}"
    events = [
        order_event(merchant, order, "charge.succeeded"),
        order_event(merchant, order, "payment_intent.succeeded"),
    ]
    deliveries = [simulate.signed_delivery(e, [merchant.whsec["test"]]) for e in events]
    assert deliver_in_parallel(url, deliveries) == [200, 200]

    with pg_rt.db.engine.connect() as holder:
        holder.execute(
            text("SELECT id FROM orders WHERE id = :id FOR NO KEY UPDATE"), {"id": order["id"]}
        )
        done = threading.Event()
        runner = threading.Thread(target=lambda: (drain_with_two_workers(pg_rt), done.set()))
        runner.start()

        def waiting_on_locks() -> bool:
            with pg_rt.db.engine.connect() as probe:
                n = probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            return int(n) >= 2

        wait_for(waiting_on_locks)
        holder.rollback()  # release: the two workers go on, one after the other
        runner.join(timeout=60)
    assert done.is_set()

    def settled() -> bool:
        with pg_rt.db.read() as s:
            pending = s.execute(
                select(func.count())
                .select_from(m.InboundEvent)
                .where(m.InboundEvent.status.in_(("pending", "retrying")))
            ).scalar_one()
        if pending:
            drain_with_two_workers(pg_rt)  # a retry, once its backoff is over
        return pending == 0

    wait_for(settled, timeout=30, interval=0.2)
    with pg_rt.db.read() as s:
        rows = s.scalars(select(m.InboundEvent)).all()
        row = s.get(m.Order, order["id"])
    assert {r.status for r in rows} == {"processed"}
    assert {r.order_id for r in rows} == {order["id"]}
    assert row is not None
    assert row.status == "paid"
    assert row.amount_paid == order["amount_total"]
    assert count(pg_rt, m.Message, m.Message.type == "order.paid") == 1
    assert timeline_count(pg_rt, order["id"], "order.paid") == 1
    assert count(pg_rt, m.Payment, m.Payment.order_id == order["id"]) == 1


def test_the_version_guard_refuses_a_save_from_a_stale_read(pg_rt, shop) -> None:  # type: ignore[no-untyped-def]
    """Two sessions read the same version without a lock; the second save is a Conflict."""
    _, order = shop
    with pg_rt.db.write() as first, pg_rt.db.write() as second:
        row1, dom1 = order_store.load(first, order["id"])
        row2, dom2 = order_store.load(second, order["id"])
        assert row1.version == row2.version
        order_store.save(first, row1, dom1, [], now=pg_rt.clock.now())
        first.commit()
        with pytest.raises(Conflict):
            order_store.save(second, row2, dom2, [], now=pg_rt.clock.now())
        second.rollback()
    with pg_rt.db.read() as s:
        row = s.get(m.Order, order["id"])
    assert row is not None
    assert row.version == 2
