"""Events processed in batches (one transaction for several), and how an idle worker notices
events stored by another process; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from sqlalchemy import event, select
from tests.conftest import make_settings
from tests.support.inbound import row, unmatched_event

from caisse.clock import UTC
from caisse.intake import processing
from caisse.jobs.worker import Worker
from caisse.runtime import Runtime
from caisse.storage import inbound
from caisse.storage import models as m
from caisse.storage.inbound import InboundBatchWriter
from caisse.storage.watch import WorkWatch


@pytest.fixture
def tenant(rt):  # type: ignore[no-untyped-def]
    with rt.db.write() as s:
        s.add(m.Tenant(id="ten_t", name="t", legal={}, created_at=dt.datetime.now(UTC)))
    return "ten_t"


def store(rt: Runtime, bodies: dict[str, bytes]) -> list[str]:
    now = dt.datetime.now(UTC)
    InboundBatchWriter(rt.db.engine).write([row(k, v, now) for k, v in bodies.items()])
    with rt.db.write() as s:
        return inbound.claim(s, "w1", now=now, limit=50)


def states(rt: Runtime) -> dict[str, tuple[str, int, str | None]]:
    with rt.db.read() as s:
        rows = s.execute(
            select(
                m.InboundEvent.provider_event_id,
                m.InboundEvent.status,
                m.InboundEvent.attempts,
                m.InboundEvent.locked_by,
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_a_batch_is_processed_in_one_transaction(rt, tenant):  # type: ignore[no-untyped-def]
    now = dt.datetime.now(UTC)
    claimed = store(rt, {f"evt_{i}": unmatched_event(f"evt_{i}", now) for i in range(5)})
    commits: list[int] = []
    event.listen(rt.db.engine, "commit", lambda conn: commits.append(1))
    processing.process_batch(rt.db, rt.clock, claimed, "w1", lambda n: 1.0)
    assert len(commits) == 1
    assert states(rt) == {f"evt_{i}": ("unmatched", 1, None) for i in range(5)}


def test_one_bad_event_fails_alone_and_the_others_are_applied_once(rt, tenant):  # type: ignore[no-untyped-def]
    now = dt.datetime.now(UTC)
    bodies = {f"evt_{i}": unmatched_event(f"evt_{i}", now) for i in range(4)}
    bodies["evt_bad"] = b"not json"
    claimed = store(rt, bodies)
    processing.process_batch(rt.db, rt.clock, claimed, "w1", lambda n: 30.0)
    got = states(rt)
    assert got.pop("evt_bad") == ("retrying", 1, None)
    assert got == {f"evt_{i}": ("unmatched", 1, None) for i in range(4)}  # not twice
    with rt.db.read() as s:
        bad = s.scalars(
            select(m.InboundEvent).where(m.InboundEvent.provider_event_id == "evt_bad")
        ).one()
    assert bad.error
    assert bad.run_at > now + dt.timedelta(seconds=25)


def test_an_event_already_final_in_a_batch_is_left_alone(rt, tenant):  # type: ignore[no-untyped-def]
    now = dt.datetime.now(UTC)
    claimed = store(rt, {f"evt_{i}": unmatched_event(f"evt_{i}", now) for i in range(3)})
    processing.process_batch(rt.db, rt.clock, claimed[:1], "w1", lambda n: 1.0)
    processing.process_batch(rt.db, rt.clock, claimed, "w1", lambda n: 1.0)
    assert {k: v[1] for k, v in states(rt).items()} == {"evt_0": 1, "evt_1": 1, "evt_2": 1}


def test_the_watch_sees_work_another_connection_stored(rt, tenant):  # type: ignore[no-untyped-def]
    watch = WorkWatch(rt.db, events=True, kinds=None)
    try:
        now = dt.datetime.now(UTC)
        assert watch.work_waiting(now) is False  # nothing yet (SQLite: the first look)
        InboundBatchWriter(rt.db.engine).write([row("evt_w", unmatched_event("evt_w", now), now)])
        assert watch.work_waiting(now) is True
        if rt.db.is_sqlite:
            assert watch.work_waiting(now) is False  # nothing committed since the last look
        else:
            assert watch.work_waiting(now) is True  # the event is still waiting
    finally:
        watch.close()


def test_a_watch_of_other_kinds_ignores_events_on_postgresql(rt, tenant):  # type: ignore[no-untyped-def]
    if rt.db.is_sqlite:
        pytest.skip("SQLite's look is any commit at all, whatever it stored")
    watch = WorkWatch(rt.db, events=False, kinds=("issue_invoice",))
    try:
        now = dt.datetime.now(UTC)
        InboundBatchWriter(rt.db.engine).write([row("evt_k", unmatched_event("evt_k", now), now)])
        assert watch.work_waiting(now) is False
    finally:
        watch.close()


def test_an_idle_worker_picks_up_an_event_another_process_stored(tmp_path, db_url, rt, tenant):  # type: ignore[no-untyped-def]
    """Another ``Runtime`` (its own engine, no shared wake-up) stores the event; the worker's
    regular claim is 60 s away, so only its looks can find the event in time."""
    settings = make_settings(tmp_path, db_url, worker_poll_interval=60.0)
    worker_rt = Runtime.build(settings)
    try:

        async def run() -> float:
            stop = asyncio.Event()
            task = asyncio.create_task(Worker(worker_rt).run(stop))
            await asyncio.sleep(0.5)  # idle: past its first claims
            now = dt.datetime.now(UTC)
            stored = time.monotonic()
            await asyncio.to_thread(
                InboundBatchWriter(rt.db.engine).write,
                [row("evt_x", unmatched_event("evt_x", now), now)],
            )
            try:
                while states(rt)["evt_x"][0] == "pending":
                    assert time.monotonic() - stored < 10, "the event was not picked up"
                    await asyncio.sleep(0.01)
                return time.monotonic() - stored
            finally:
                stop.set()
                await task

        assert asyncio.run(run()) < 10
        assert states(rt)["evt_x"] == ("unmatched", 1, None)
    finally:
        worker_rt.close()
