"""Job kinds and their handlers.

A handler receives a ``JobContext``. Handlers whose effects are in the database call
``ctx.complete(session)`` inside their own transaction, so the effect and the job's completion
commit together (exactly-once effect on top of at-least-once delivery). Handlers doing outside
I/O (HTTP, SMTP) may be ``async`` and leave completion to the worker.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from caisse.storage import jobs as jobstore
from caisse.storage.jobs import ClaimedJob

if TYPE_CHECKING:
    from caisse.runtime import Runtime


@dataclass
class JobContext:
    rt: Runtime
    job: ClaimedJob
    worker_id: str
    completed: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload

    def complete(self, session: Session) -> None:
        jobstore.complete(session, self.job.id, self.worker_id, now=self.rt.clock.now())
        self.completed = True

    def completed_elsewhere(self) -> None:
        """The handler ended this job in its transaction through a batch call
        (``jobstore.complete_many`` / ``reschedule_many``)."""
        self.completed = True

    def reschedule(self, session: Session, run_at: dt.datetime, *, postpone: bool = False) -> None:
        """Run this job again at ``run_at`` (in the handler's transaction); the worker then
        neither completes nor fails it. ``postpone``: this run did nothing, so it does not
        count as a run (``job.attempts`` keeps telling how many runs ended without outcome)."""
        jobstore.reschedule(
            session,
            self.job.id,
            self.worker_id,
            run_at=run_at,
            now=self.rt.clock.now(),
            attempts=max(self.job.attempts - 1, 0) if postpone else 0,
        )
        self.completed = True


RENDER_KINDS = ("issue_invoice", "issue_credit_note", "send_invoice_email")
"""The jobs that hold the CPU (PDF rendering) or wait on SMTP: the *render lane*, which may run
in its own process (``caisse worker --render``) at a lower CPU priority than ingest, event
processing and partner deliveries."""

FOREGROUND_KINDS = ("deliver",)
"""The jobs someone waits for (a partner), beside inbound events: while any is due or running, a
background lane (``Worker(yields=True)``, ``caisse worker --render``) paces itself."""

Handler = Callable[[JobContext], "Awaitable[None] | None"]
_HANDLERS: dict[str, Handler] = {}
_SHUTDOWN: list[Callable[[], Awaitable[None]]] = []
log = logging.getLogger("caisse.worker")


def on_shutdown(fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Run ``fn`` in the worker's event loop when it stops (handlers' per-loop clients)."""
    if fn not in _SHUTDOWN:
        _SHUTDOWN.append(fn)
    return fn


async def shutdown() -> None:
    """Release what handlers hold in the current event loop; never raises."""
    for fn in _SHUTDOWN:
        try:
            await fn()
        except Exception:
            log.exception("worker shutdown hook failed", extra={"action": "worker.shutdown"})


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[kind] = fn
        return fn

    return register


def get(kind: str) -> Handler | None:
    return _HANDLERS.get(kind)


def kinds() -> tuple[str, ...]:
    return tuple(sorted(_HANDLERS))


def load_all() -> None:
    """Import every module that registers handlers (explicit, so nothing hides in imports)."""
    import caisse.delivery.worker
    import caisse.extranet.invite_mail
    import caisse.invoices.jobs
    import caisse.reconcile  # noqa: F401
