"""Group commit for inbound events: durable, and fast.

Each request hands its verified event to one writer thread and waits. The writer takes every
event waiting at that moment and inserts them in ONE transaction (each row is also its own
processing job; ``ON CONFLICT DO NOTHING`` on the event's unique key, so a duplicate adds
nothing), commits (one fsync for the whole batch) and only then releases the waiting requests,
which answer 200. Under load a batch holds dozens of events; idle, a batch is one event and
costs what a plain insert costs. If the commit fails, every request of the batch gets the error
(503) and the provider retries: nothing is acknowledged that is not stored.

Requests reach the writer in groups: the first request of an event-loop iteration to submit
schedules a hand-over (``call_soon``), and every request that submits before it runs joins the
same group, so the writer is woken once per loop iteration with everything that iteration
verified. Woken per request instead, it used to start a batch with the first event alone (under
load, more than half of all batches held one event, each paying a whole commit). The delay is
at most one loop iteration.

The writer shares the GIL with the event loop, and every time it gets the GIL back it may wait
behind the busy loop, so it does as little Python as it can per batch: it drains the queue in
one go, writes with one statement (one round trip, on a connection it keeps), and wakes each
event loop once per batch (not once per request) to settle that batch's futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from caisse.errors import StorageUnavailable
from caisse.storage.db import Database, is_outage
from caisse.storage.inbound import InboundBatchWriter

log = logging.getLogger("caisse.intake")

_Pending = tuple[dict[str, Any], "asyncio.Future[None]", asyncio.AbstractEventLoop]


class IngestWriter:
    def __init__(
        self, db: Database, *, max_batch: int = 500, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._db = db
        self._batch_writer = InboundBatchWriter(db.engine, keep_connection=True)
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[list[_Pending] | None] = queue.SimpleQueue()
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.stored = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="caisse-ingest", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=10)

    async def submit(self, event_row: dict[str, Any]) -> None:
        """Return once the event (its own processing job) is committed, or raise
        StorageUnavailable."""
        if self._thread is None:
            self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append((event_row, fut, loop))
        await fut

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._thread is None:  # stopped since these requests submitted
            self.start()
        self._queue.put(self._gathering.pop(loop))

    def _loop(self) -> None:
        try:
            self._run()
        finally:
            self._batch_writer.close()

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            first = get()
            if first is None:
                return
            batch = first
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    more = get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True  # stop after this batch
                    break
                batch += more
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Pending]) -> None:
        error: BaseException | None = None
        try:
            self._insert(batch)
        except Exception as exc:
            if len(batch) > 1 and not is_outage(exc):
                # One bad row must not fail its neighbours: retry them one by one.
                for item in batch:
                    self._write([item])
                return
            log.error(
                "ingest commit failed",
                extra={"action": "intake.commit_failed", "batch": len(batch), "error": repr(exc)},
            )
            error = StorageUnavailable("The event could not be stored")
        else:
            self.batches += 1
            self.stored += len(batch)
            if self._on_commit is not None:
                self._on_commit()
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _, fut, loop in batch:
            by_loop.setdefault(loop, []).append(fut)
        for loop, futures in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, futures, error)

    def _insert(self, batch: list[_Pending]) -> None:
        with self._db.write_turn():  # SQLite: queue behind the job worker, not in its busy handler
            self._batch_writer.write([item[0] for item in batch])


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futures:
        if fut.done():  # the request was cancelled (client gone) while waiting
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
