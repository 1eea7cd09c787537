"""The generic job queue: enqueue once, claim, complete, retry with the error kept, park."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy import select, update
from tests.support.inbound import row, unmatched_event

from caisse.clock import UTC
from caisse.jobs import registry
from caisse.jobs.worker import Worker, backoff_seconds
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.storage.inbound import InboundBatchWriter


def test_enqueue_is_deduplicated_by_kind_and_key(rt):
    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "k", "same", {"n": 1}, now=now)
        jobstore.enqueue(s, "k", "same", {"n": 2}, now=now)
        jobstore.enqueue(s, "k", "other", {"n": 3}, now=now)
    with rt.db.read() as s:
        rows = s.execute(select(m.Job.key, m.Job.payload).order_by(m.Job.id)).all()
    assert [(k, p["n"]) for k, p in rows] == [("same", 1), ("other", 3)]


def test_failing_job_is_retried_with_backoff_and_error_kept(rt):
    calls: list[int] = []

    @registry.handler("test.flaky")
    def flaky(ctx: registry.JobContext) -> None:
        calls.append(ctx.job.attempts)
        raise RuntimeError("partner said no")

    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "test.flaky", "1", {}, now=now, max_attempts=2)
    asyncio.run(Worker(rt).run_once())
    with rt.db.read() as s:
        job = s.execute(select(m.Job)).scalar_one()
    assert calls == [1]
    assert job.status == "queued"
    assert job.attempts == 1
    assert "partner said no" in (job.last_error or "")
    assert job.run_at > now
    # Due again: the second (last) attempt fails too and the job is parked, not dropped.
    with rt.db.write() as s:
        s.execute(m.Job.__table__.update().values(run_at=now))
    asyncio.run(Worker(rt).run_once())
    with rt.db.read() as s:
        job = s.execute(select(m.Job)).scalar_one()
    assert job.status == "dead"
    assert job.attempts == 2


def test_handler_completing_in_its_own_transaction(rt):
    @registry.handler("test.effect")
    def effect(ctx: registry.JobContext) -> None:
        with ctx.rt.db.write() as s:
            s.add(m.Tenant(id="ten_made", name="x", legal={}, created_at=dt.datetime.now(UTC)))
            ctx.complete(s)

    with rt.db.write() as s:
        jobstore.enqueue(s, "test.effect", "1", {}, now=dt.datetime.now(UTC))
    assert asyncio.run(Worker(rt).drain()) == 1
    with rt.db.read() as s:
        assert s.get(m.Tenant, "ten_made") is not None
        assert s.execute(select(m.Job.status)).scalar_one() == "done"


def test_a_lapsed_job_lease_is_claimed_again(rt):
    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "k", "1", {}, now=now)
    with rt.db.write() as s:
        assert len(jobstore.claim(s, "w1", now=now, lease_seconds=30)) == 1
    with rt.db.write() as s:
        assert jobstore.claim(s, "w2", now=now) == []
        again = jobstore.claim(s, "w2", now=now + dt.timedelta(seconds=31))
    assert len(again) == 1
    assert again[0].attempts == 2


def test_backoff_grows_and_is_capped() -> None:
    import random

    rng = random.Random(1)
    values = [backoff_seconds(n, rng=rng) for n in range(1, 15)]
    assert values[0] < values[3] < values[6]
    assert max(values) <= 600 * 1.2


def test_a_worker_lane_claims_only_its_kinds(rt):
    ran: list[str] = []

    @registry.handler("test.lane_a")
    def lane_a(ctx: registry.JobContext) -> None:
        ran.append("a")

    @registry.handler("test.lane_b")
    def lane_b(ctx: registry.JobContext) -> None:
        ran.append("b")

    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "test.lane_a", "1", {}, now=now)
        jobstore.enqueue(s, "test.lane_b", "1", {}, now=now)
    assert asyncio.run(Worker(rt, kinds=("test.lane_b",), events=False).drain()) == 1
    assert ran == ["b"]
    with rt.db.read() as s:
        left = s.execute(select(m.Job.kind, m.Job.status).order_by(m.Job.kind)).all()
    assert [tuple(r) for r in left] == [("test.lane_a", "queued"), ("test.lane_b", "done")]


def test_a_worker_skipping_the_render_kinds_leaves_them_to_the_render_lane(rt):
    ran: list[str] = []

    @registry.handler("test.render")
    def render(ctx: registry.JobContext) -> None:
        ran.append("render")

    @registry.handler("test.deliver")
    def deliver(ctx: registry.JobContext) -> None:
        ran.append("deliver")

    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "test.render", "1", {}, now=now)
        jobstore.enqueue(s, "test.deliver", "1", {}, now=now)
    serve_worker = Worker(rt, kinds=("test.render", "test.deliver"), skip_kinds=("test.render",))
    assert asyncio.run(serve_worker.drain()) == 1
    assert ran == ["deliver"]
    with rt.db.read() as s:
        left = s.execute(select(m.Job.kind, m.Job.status).order_by(m.Job.kind)).all()
    assert [tuple(r) for r in left] == [("test.deliver", "done"), ("test.render", "queued")]

    assert asyncio.run(Worker(rt, kinds=("test.render",), events=False).drain()) == 1
    assert ran == ["deliver", "render"]


def test_skipping_without_kinds_claims_every_other_registered_kind(rt):
    registry.load_all()
    worker = Worker(rt, skip_kinds=registry.RENDER_KINDS)
    assert worker.kinds is not None
    assert set(worker.kinds) == set(registry.kinds()) - set(registry.RENDER_KINDS)
    assert "deliver" in worker.kinds


def test_the_render_kinds_are_real_job_kinds():
    registry.load_all()
    assert set(registry.RENDER_KINDS) <= set(registry.kinds())


def test_a_background_lane_paces_itself_while_events_wait(rt):
    """The render lane claims one job per ``pace`` while an inbound event waits, and runs at
    full speed once the foreground has caught up."""
    done: list[float] = []
    six: list[asyncio.Event] = []

    @registry.handler("test.background")
    async def background(ctx: registry.JobContext) -> None:
        done.append(time.monotonic())
        if len(done) == 6:
            six[0].set()

    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        s.add(m.Tenant(id="ten_t", name="t", legal={}, created_at=now))
        for i in range(6):
            jobstore.enqueue(s, "test.background", str(i), {}, now=now)
    InboundBatchWriter(rt.db.engine).write([row("evt_fg", unmatched_event("evt_fg", now), now)])

    async def run() -> int:
        stop = asyncio.Event()
        six.append(asyncio.Event())
        lane = Worker(rt, kinds=("test.background",), events=False, yields=True, pace=0.2)
        task = asyncio.create_task(lane.run(stop))
        try:
            await asyncio.sleep(0.7)
            paced = len(done)
            with rt.db.write() as s:  # the foreground catches up
                s.execute(update(m.InboundEvent).values(status="processed"))
            await asyncio.wait_for(six[0].wait(), timeout=5)
            return paced
        finally:
            stop.set()
            await task

    paced = asyncio.run(run())
    assert 1 <= paced <= 4  # one claim per 0.2 s, not the six in one go
    assert len(done) == 6


def _jobs(rt):  # type: ignore[no-untyped-def]
    with rt.db.read() as s:
        rows = s.execute(
            select(m.Job.kind, m.Job.key, m.Job.status, m.Job.locked_by, m.Job.attempts)
        ).all()
    return {(kind, key): (status, by, attempts) for kind, key, status, by, attempts in rows}


def test_jobs_made_under_dispatch_come_back_claimed_by_the_worker(rt):
    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.enqueue(s, "deliver", "dup", {"n": 0}, now=now)  # already queued before
    with rt.db.write() as s:
        taken = jobstore.dispatch_here(s, "w1", ("deliver",), now=now, lease_seconds=30)
        jobstore.insert_rows(
            s,
            [
                jobstore.job_row("deliver", "d1", {"n": 1}, now=now),
                jobstore.job_row("deliver", "dup", {"n": 2}, now=now),
                jobstore.job_row("deliver", "later", {}, now=now, run_at=now + dt.timedelta(1)),
                jobstore.job_row("issue_invoice", "i1", {}, now=now),
            ],
        )
    # Only the new, due job of the dispatched kind: running, leased to w1, its first attempt.
    assert [(j.kind, j.key, j.payload, j.attempts) for j in taken] == [
        ("deliver", "d1", {"n": 1}, 1)
    ]
    assert _jobs(rt) == {
        ("deliver", "dup"): ("queued", None, 0),
        ("deliver", "d1"): ("running", "w1", 1),
        ("deliver", "later"): ("queued", None, 0),
        ("issue_invoice", "i1"): ("queued", None, 0),
    }
    # The worker completes it as it would a job it claimed; nobody else can claim it meanwhile.
    with rt.db.write() as s:
        assert [j.key for j in jobstore.claim(s, "w2", now=now, kinds=("deliver",))] == ["dup"]
        jobstore.complete_many(s, [taken[0].id], "w1", now=now)
    assert _jobs(rt)[("deliver", "d1")] == ("done", "w1", 1)


def test_a_dispatched_job_whose_worker_died_is_claimed_again_after_its_lease(rt):
    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        jobstore.dispatch_here(s, "w1", ("deliver",), now=now, lease_seconds=30)
        jobstore.enqueue(s, "deliver", "d1", {}, now=now)
    with rt.db.write() as s:
        assert jobstore.claim(s, "w2", now=now + dt.timedelta(seconds=29)) == []
        again = jobstore.claim(s, "w2", now=now + dt.timedelta(seconds=31))
    assert [(j.key, j.attempts) for j in again] == [("d1", 2)]


def test_without_dispatch_or_after_a_rollback_nothing_is_claimed(rt):
    now = dt.datetime.now(UTC)
    taken: list[jobstore.ClaimedJob] = []
    try:
        with rt.db.write() as s:
            taken = jobstore.dispatch_here(s, "w1", ("deliver",), now=now, lease_seconds=30)
            jobstore.enqueue(s, "deliver", "d1", {}, now=now)
            raise RuntimeError("the transaction fails after the insert")
    except RuntimeError:
        pass
    assert len(taken) == 1  # what the caller must not run: the transaction did not commit
    assert _jobs(rt) == {}
    with rt.db.write() as s:
        assert jobstore.dispatch_here(s, "w1", (), now=now, lease_seconds=30) == []
        jobstore.enqueue(s, "deliver", "d1", {}, now=now)
    assert _jobs(rt) == {("deliver", "d1"): ("queued", None, 0)}
