"""Group commit for async job handlers: many handlers' database work in one transaction.

A transaction costs a commit (an fsync on SQLite, a round trip and a WAL flush on PostgreSQL)
whatever it holds, so a handler that writes once per job caps the worker at one job per
commit. ``Coalescer.submit`` hands an item to a function that takes a *list*: the first item of
an idle coalescer runs at once (no added latency), and every item submitted while that call
runs waits for the next call, together. Under load the batch grows by itself; idle, it is one.

When a batch call raises, each of its items is run again alone, so one bad item fails only its
own submitter and never the others (their work is redone, not lost: the batch rolled back).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """One per event loop (its futures belong to the loop that made them)."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, max_batch: int = 256) -> None:
        self._fn = fn
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False
        self.calls = 0  # how many batch calls ran (tests and metrics read it)

    async def submit(self, item: T) -> R:
        """Run ``item`` in the next batch; returns its own result or raises its own error."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                await self._run(batch)
        finally:
            self._running = False

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        self.calls += 1
        try:
            results = await asyncio.to_thread(self._fn, items)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            for one in batch:  # find the bad item; the others' work is redone alone
                await self._run([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[R], *, result: R | None = None, error: BaseException | None = None
) -> None:
    if future.done():  # its submitter was cancelled (worker shutdown)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
