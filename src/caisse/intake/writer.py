"""Group commit for inbound events: durable, and fast.

Each request hands its verified event to one writer thread and waits. The writer takes every
event waiting at that moment and inserts them in ONE transaction (each row is also its own
processing job; ``ON CONFLICT DO NOTHING`` on the event's unique key, so a duplicate adds
nothing), commits
(one fsync for the whole batch) and only then releases the waiting requests, which answer 200.
Under load a batch holds hundreds of events; idle, a batch is one event and costs what a plain
insert costs. If the commit fails, every request of the batch gets the error (503) and the
provider retries: nothing is acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from caisse.errors import StorageUnavailable
from caisse.storage.db import Database, is_outage
from caisse.storage.inbound import InboundBatchWriter

log = logging.getLogger("caisse.intake")


@dataclass(slots=True)
class _Pending:
    event_row: dict[str, Any]
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class IngestWriter:
    def __init__(
        self, db: Database, *, max_batch: int = 500, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._db = db
        self._batch_writer = InboundBatchWriter(db.engine)
        self._batch_writer = InboundBatchWriter(db.engine)
        self._max_batch = max_batch
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
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
        self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(event_row, fut, loop))
        await fut

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._write(batch)

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
        for item in batch:
            item.loop.call_soon_threadsafe(_settle, item.future, error)

    def _insert(self, batch: list[_Pending]) -> None:
        self._batch_writer.write([p.event_row for p in batch])


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
