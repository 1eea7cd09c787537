"""The worker: claims jobs in batches and runs them with bounded concurrency.

Failed jobs are retried with capped exponential backoff (1 s, 2 s, 4 s … 10 min, ±20 %
jitter) and their error kept on the row; after ``max_attempts`` they are parked as ``dead`` and
shown to the operator, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import os
import random
import socket
import traceback
from collections.abc import Coroutine
from typing import Any, TypeVar

from caisse.intake import processing
from caisse.jobs import registry
from caisse.jobs.registry import JobContext
from caisse.runtime import Runtime, threadsafe_waker
from caisse.storage import inbound
from caisse.storage import jobs as jobstore
from caisse.storage.jobs import ClaimedJob
from caisse.storage.watch import WorkWatch

T = TypeVar("T")

log = logging.getLogger("caisse.worker")

BACKGROUND_PACE = 0.25
"""Seconds between a background lane's claims (one job each) while the foreground is busy."""
BACKGROUND_BATCH = 2
"""Jobs a background lane runs at once when the foreground is idle: rendering is CPU work, so
more at once would not go faster, and it looks at the foreground again after each."""
EVENT_BATCH = 10
"""Inbound events processed per transaction: one commit for several, while the first of them
waits for at most nine others (a few milliseconds each) before its partners hear of it."""


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on the event loop ``caisse serve`` runs its worker on: uvloop, when
    installed (uvicorn picks it), else asyncio's own; a tenth less CPU per delivery."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(main)
    return uvloop.run(main)


def backoff_seconds(attempts: int, *, rng: random.Random | None = None) -> float:
    base = min(2.0 ** max(attempts - 1, 0), 600.0)
    return base * (rng or random).uniform(0.8, 1.2)


class Worker:
    def __init__(
        self,
        rt: Runtime,
        *,
        worker_id: str | None = None,
        batch: int = 50,
        concurrency: int = 32,
        kinds: tuple[str, ...] | None = None,
        skip_kinds: tuple[str, ...] = (),
        events: bool = True,
        yields: bool = False,
        pace: float = BACKGROUND_PACE,
    ) -> None:
        """``kinds`` limits the job kinds this worker claims and ``events=False`` leaves inbound
        provider events to other workers: e.g. one worker for ``invoice`` jobs, whose PDF
        rendering holds the CPU, beside one for events and ``deliver`` jobs, so partner
        deliveries never queue behind rendering. ``skip_kinds`` claims every kind but those
        (``caisse serve --no-render`` skips :data:`~caisse.jobs.registry.RENDER_KINDS`).
        ``yields``: a background lane (the render lane), which claims one job per ``pace``
        seconds while inbound events or :data:`~caisse.jobs.registry.FOREGROUND_KINDS` jobs
        are waiting, so that on SQLite its writes seldom stand in the foreground's way (the
        database has one write lock), and runs at full speed otherwise."""
        registry.load_all()
        self.rt = rt
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        if skip_kinds:
            kinds = tuple(k for k in (kinds or registry.kinds()) if k not in skip_kinds)
        self.kinds = kinds
        self.events = events
        self.concurrency = concurrency
        self.yields = yields
        self.pace = pace
        self._sem = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._watch = WorkWatch(rt.db, events=events, kinds=self.kinds)
        # The jobs events make that this worker runs straight from the processing transaction.
        self._dispatch = tuple(
            k for k in registry.FOREGROUND_KINDS if self.kinds is None or k in self.kinds
        )

    async def _claim(self, want: int) -> list[Coroutine[Any, Any, None]]:
        """Lease up to ``want`` inbound events and up to ``want`` jobs in one transaction;
        returns the work to run (the semaphore bounds how much runs at once)."""
        now = self.rt.clock.now()

        def claim() -> tuple[list[str], list[ClaimedJob]]:
            with self.rt.db.write() as s:
                events = (
                    inbound.claim(s, self.worker_id, now=now, limit=want) if self.events else []
                )
                jobs = jobstore.claim(
                    s,
                    self.worker_id,
                    now=now,
                    limit=want,
                    kinds=self.kinds,
                    lease_seconds=self.rt.settings.job_lease_seconds,
                )
                return events, jobs

        events, jobs = await asyncio.to_thread(claim)
        batches = [events[i : i + EVENT_BATCH] for i in range(0, len(events), EVENT_BATCH)]
        return [*(self._process(b) for b in batches), *(self._run(j) for j in jobs)]

    async def run_once(self) -> int:
        """Claim one batch and run it to the end; returns how many items were run."""
        work = await self._claim(self.batch)
        if work:
            await asyncio.gather(*work)
        return len(work)

    async def _process(self, event_ids: list[str]) -> None:
        """Process a batch of events, then run at once the deliveries they made (dispatched
        to this worker by the processing transaction itself)."""
        async with self._sem:
            taken = await asyncio.to_thread(
                processing.process_batch,
                self.rt.db,
                self.rt.clock,
                event_ids,
                self.worker_id,
                backoff_seconds,
                dispatch=self._dispatch,
                lease_seconds=self.rt.settings.job_lease_seconds,
            )
        if taken:
            await asyncio.gather(*(self._run(job) for job in taken))

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Run until no job is ready (tests, the demo, ``caisse reconcile``)."""
        total = 0
        try:
            for _ in range(max_rounds):
                n = await self.run_once()
                total += n
                if n == 0:
                    break
        finally:
            await registry.shutdown()
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and run jobs until ``stop``; jobs run as tasks and the loop claims again as
        soon as a slot frees, so a slow job (a partner taking 10 s) never holds up the others."""
        loop = asyncio.get_running_loop()
        waker = threadsafe_waker(loop, self._wake)
        self.rt.wakeups.append(waker)
        tasks: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._wake.set()  # a slot is free, and the job may have enqueued others

        async def relay_stop() -> None:  # stopping wakes an idle worker at once
            await stop.wait()
            self._wake.set()

        stopping = asyncio.create_task(relay_stop())

        log.info("worker started", extra={"action": "worker.start", "worker": self.worker_id})
        try:  # the periodic reconciliation job (one row, whichever worker starts first)
            from caisse.reconcile import schedule

            await asyncio.to_thread(schedule, self.rt)
        except Exception:
            log.exception("reconcile not scheduled", extra={"action": "worker.schedule_failed"})
        try:
            while not stop.is_set():
                self._wake.clear()
                want = min(self.batch, self.concurrency - len(tasks))
                paced = self.yields and await self._foreground_busy()
                if paced:
                    want = min(want, 1) if not tasks else 0
                elif self.yields:  # a few at a time, so that it looks again soon
                    want = min(want, BACKGROUND_BATCH - len(tasks))
                claimed: list[Coroutine[Any, Any, None]] = []
                # A claim is a write transaction: wait for a few free slots rather than
                # claiming one job per finished one, unless the worker is idle.
                if want >= max(1, self.concurrency // 4) or (want > 0 and not tasks):
                    try:
                        claimed = await self._claim(want)
                    except Exception:  # the database may be down: keep the loop alive
                        log.exception("worker poll failed", extra={"action": "worker.poll_failed"})
                for work in claimed:
                    task = asyncio.create_task(work)
                    tasks.add(task)
                    task.add_done_callback(finished)
                if paced:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.pace)
                    continue
                if claimed and len(claimed) >= want and len(tasks) < self.concurrency:
                    continue  # a full batch and room left: more may be ready
                await self._idle(loop.time() + self.rt.settings.worker_poll_interval)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            stopping.cancel()
            self.rt.wakeups.remove(waker)
            self._watch.close()
            await registry.shutdown()

    async def _foreground_busy(self) -> bool:
        def look() -> bool:
            now = self.rt.clock.now()
            with self.rt.db.read() as s:
                return inbound.any_waiting(s, now=now) or jobstore.any_active(
                    s, now=now, kinds=registry.FOREGROUND_KINDS
                )

        try:
            return await asyncio.to_thread(look)
        except Exception:  # the database may be down: the claim will log it
            return False

    async def _idle(self, until: float) -> None:
        """Wait for a wake-up from this process, for work stored by another process (a look
        every ``worker_peek_interval``, ``storage.watch``), or until ``until``."""
        loop = asyncio.get_running_loop()
        peek = self.rt.settings.worker_peek_interval
        while (left := until - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(peek, left) if peek else left)
                return
            except TimeoutError:
                if not peek:
                    return
            if await self._watch.look(self.rt.clock.now()):
                return

    async def _run(self, job: ClaimedJob) -> None:
        async with self._sem:
            handler = registry.get(job.kind)
            ctx = JobContext(self.rt, job, self.worker_id)
            try:
                if handler is None:
                    raise LookupError(f"no handler for job kind {job.kind!r}")
                if inspect.iscoroutinefunction(handler):
                    await handler(ctx)
                else:
                    await asyncio.to_thread(handler, ctx)
                if not ctx.completed:
                    await asyncio.to_thread(self._complete, job)
            except Exception as exc:  # any failure is recorded on the job row and retried
                await asyncio.to_thread(self._fail, job, exc)

    def _complete(self, job: ClaimedJob) -> None:
        with self.rt.db.write() as s:
            jobstore.complete(s, job.id, self.worker_id, now=self.rt.clock.now())

    def _fail(self, job: ClaimedJob, exc: BaseException) -> None:
        now = self.rt.clock.now()
        retry_at: dt.datetime | None = None
        if job.attempts < job.max_attempts:
            retry_at = now + dt.timedelta(seconds=backoff_seconds(job.attempts))
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.warning(
            "job failed",
            extra={
                "action": "job.failed",
                "job_id": job.id,
                "kind": job.kind,
                "attempts": job.attempts,
                "error": detail[:500],
                "dead": retry_at is None,
            },
        )
        try:
            with self.rt.db.write() as s:
                jobstore.fail(s, job.id, self.worker_id, error=detail, now=now, retry_at=retry_at)
        except Exception:  # the lease will expire and the job be retried anyway
            log.exception("could not record job failure", extra={"action": "job.fail_record"})
