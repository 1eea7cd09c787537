"""The job queue in the database (transactional outbox).

A job is enqueued in the same transaction as the change that needs it, deduplicated by
``(kind, key)``. Workers claim a batch by moving rows to ``running`` with a lease
(``locked_until``): ``FOR UPDATE SKIP LOCKED`` on PostgreSQL lets any number of workers on any
number of machines claim disjoint rows; SQLite serialises writers so the same statement is safe.
A worker that dies mid-job loses nothing: its lease expires and the job is claimed again
(at-least-once; handlers are idempotent).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from caisse.storage import batch
from caisse.storage import models as m
from caisse.storage.sql import any_row, insert_ignore


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


_JOBS: Table = m.Job.__table__  # type: ignore[assignment]
_CLAIMED = (
    _JOBS.c.id,
    _JOBS.c.kind,
    _JOBS.c.key,
    _JOBS.c.payload,
    _JOBS.c.attempts,
    _JOBS.c.max_attempts,
)


def enqueue(
    session: Session,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    now: dt.datetime,
    run_at: dt.datetime | None = None,
    tenant_id: str | None = None,
    max_attempts: int = 25,
) -> None:
    insert_rows(
        session,
        [
            job_row(
                kind,
                key,
                payload,
                now=now,
                run_at=run_at,
                tenant_id=tenant_id,
                max_attempts=max_attempts,
            )
        ],
    )


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert :func:`job_row` rows, each once: a ``(kind, key)`` already queued adds nothing.
    Under :func:`dispatch_here`, the due ones of the dispatched kinds go in already claimed."""
    statement = insert_ignore(session, _JOBS, conflict=["kind", "key"])
    dispatch: _Dispatch | None = session.info.get(_DISPATCH)
    if dispatch is not None:
        queued: list[dict[str, Any]] = []
        leased: list[dict[str, Any]] = []
        for r in rows:
            if r["kind"] in dispatch.kinds and r["run_at"] <= r["created_at"]:
                leased.append({**r, **dispatch.lease})
            else:
                queued.append(r)
        batch.defer(session, _returning_claimed(statement), leased, then=dispatch.took)
        rows = queued
    batch.defer(session, statement, rows)


@functools.cache
def _returning_claimed(statement: Insert) -> Insert:
    return statement.returning(*_CLAIMED)


@dataclass(frozen=True, slots=True)
class _Dispatch:
    kinds: frozenset[str]
    lease: dict[str, Any]
    jobs: list[ClaimedJob]

    def took(self, result: CursorResult[Any], _: list[dict[str, Any]]) -> None:
        self.jobs.extend(ClaimedJob(*r) for r in result)  # type: ignore[call-arg]


_DISPATCH = "caisse.jobs.dispatch"


def dispatch_here(
    session: Session,
    worker_id: str,
    kinds: tuple[str, ...],
    *,
    now: dt.datetime,
    lease_seconds: float,
) -> list[ClaimedJob]:
    """From here on in this transaction, jobs of ``kinds`` that are due at once are inserted
    already claimed by ``worker_id`` (the lease :func:`claim` would give them), and the list
    returned fills with them: the worker runs them as soon as the transaction has committed,
    without a claim of its own (one write transaction less per job, and no wait for the next
    claim round). If the worker dies first, the lease expires and any worker claims them, as
    after any claim. Run nothing from the list if the transaction did not commit."""
    taken: list[ClaimedJob] = []
    if kinds:
        lease = {
            "status": "running",
            "locked_by": worker_id,
            "locked_until": now + dt.timedelta(seconds=lease_seconds),
            "attempts": 1,
        }
        session.info[_DISPATCH] = _Dispatch(frozenset(kinds), lease, taken)
    return taken


def job_row(
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    now: dt.datetime,
    run_at: dt.datetime | None = None,
    tenant_id: str | None = None,
    max_attempts: int = 25,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "payload": payload,
        "tenant_id": tenant_id,
        "status": "queued",
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_at": run_at or now,
        "created_at": now,
        "updated_at": now,
    }


def claim(
    session: Session,
    worker_id: str,
    *,
    now: dt.datetime,
    limit: int = 20,
    lease_seconds: float = 120,
    kinds: tuple[str, ...] | None = None,
) -> list[ClaimedJob]:
    conn = session.connection()
    params: dict[str, Any] = {"now": now, "limit": limit}
    if kinds:
        params["kinds"] = kinds
    ids = list(conn.execute(_CLAIM_PICK_KINDS if kinds else _CLAIM_PICK, params).scalars())
    if not ids:
        return []
    until = now + dt.timedelta(seconds=lease_seconds)
    rows = conn.execute(
        _CLAIM_LEASE, {"ids": ids, "worker": worker_id, "until": until, "now": now}
    ).all()
    return sorted((ClaimedJob(*r) for r in rows), key=lambda j: j.id)


def _due(now: Any) -> ColumnElement[bool]:
    """Queued and due, or running with a lapsed lease, at ``now`` (a time or a bind)."""
    return or_(
        and_(_JOBS.c.status == "queued", _JOBS.c.run_at <= now),
        and_(_JOBS.c.status == "running", _JOBS.c.locked_until < now),
    )


def _ready(now: dt.datetime, kinds: tuple[str, ...] | None) -> ColumnElement[bool]:
    ready = _due(now)
    return and_(ready, _JOBS.c.kind.in_(kinds)) if kinds else ready


# Prebuilt (each worker runs them every round): no expression building, cached compilation.
_CLAIM_PICK = (
    select(_JOBS.c.id)
    .where(_due(bindparam("now")))
    .order_by(_JOBS.c.run_at, _JOBS.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM_PICK_KINDS = _CLAIM_PICK.where(_JOBS.c.kind.in_(bindparam("kinds", expanding=True)))
_CLAIM_LEASE = (
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status="running",
        locked_by=bindparam("worker"),
        locked_until=bindparam("until"),
        attempts=_JOBS.c.attempts + 1,
        updated_at=bindparam("now"),
    )
    .returning(*_CLAIMED)
)


def any_ready(
    session: Session | Connection, *, now: dt.datetime, kinds: tuple[str, ...] | None = None
) -> bool:
    """Whether :func:`claim` would find a job, by a read that takes no write lock."""
    return any_row(session, _ready(now, kinds), of=m.Job.id)


def any_active(session: Session, *, now: dt.datetime, kinds: tuple[str, ...]) -> bool:
    """Whether a job of these kinds is due or running."""
    active = or_(and_(m.Job.status == "queued", m.Job.run_at <= now), m.Job.status == "running")
    return any_row(session, active, m.Job.kind.in_(kinds), of=m.Job.id)


def complete(session: Session, job_id: int, worker_id: str, *, now: dt.datetime) -> bool:
    """Mark done, in the handler's own transaction; False if the lease was lost meanwhile."""
    result = session.execute(
        update(m.Job)
        .where(m.Job.id == job_id, m.Job.locked_by == worker_id, m.Job.status == "running")
        .values(status="done", locked_until=None, updated_at=now, last_error=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def complete_many(
    session: Session, job_ids: list[int], worker_id: str, *, now: dt.datetime
) -> None:
    """``complete`` for a batch of jobs in one statement (group-committing handlers)."""
    if job_ids:
        session.connection().execute(
            _COMPLETE_MANY, {"ids": job_ids, "worker": worker_id, "now": now}
        )


_COMPLETE_MANY = (
    update(_JOBS)
    .where(
        _JOBS.c.id.in_(bindparam("ids", expanding=True)),
        _JOBS.c.locked_by == bindparam("worker"),
        _JOBS.c.status == "running",
    )
    .values(status="done", locked_until=None, updated_at=bindparam("now"), last_error=None)
)


def reschedule_many(
    session: Session, runs: list[tuple[int, dt.datetime]], worker_id: str, *, now: dt.datetime
) -> None:
    """``reschedule`` (a fresh run, attempts back to 0) for a batch, as one executemany."""
    if not runs:
        return
    table = _JOBS
    session.connection().execute(
        update(table)
        .where(
            table.c.id == bindparam("job_id"),
            table.c.locked_by == worker_id,
            table.c.status == "running",
        )
        .values(
            status="queued",
            run_at=bindparam("new_run_at"),
            attempts=0,
            locked_by=None,
            locked_until=None,
            last_error=None,
            updated_at=now,
        ),
        [{"job_id": job_id, "new_run_at": run_at} for job_id, run_at in runs],
    )


def reschedule(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    run_at: dt.datetime,
    now: dt.datetime,
    attempts: int = 0,
) -> bool:
    """Put a claimed job back in the queue for ``run_at`` (handlers owning their own schedule,
    e.g. partner deliveries); ``attempts`` restarts at 0 (a fresh run) unless told otherwise.
    False if the lease was lost meanwhile."""
    result = session.execute(
        update(m.Job)
        .where(m.Job.id == job_id, m.Job.locked_by == worker_id, m.Job.status == "running")
        .values(
            status="queued",
            run_at=run_at,
            attempts=attempts,
            locked_by=None,
            locked_until=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def requeue(
    session: Session,
    kind: str,
    key: str,
    payload: dict[str, Any],
    *,
    now: dt.datetime,
    run_at: dt.datetime | None = None,
    tenant_id: str | None = None,
    max_attempts: int = 25,
) -> None:
    """Enqueue ``(kind, key)`` again even if it ran before (manual retry, replay); a job
    currently running is left alone (its handler decides what comes next)."""
    enqueue(
        session,
        kind,
        key,
        payload,
        now=now,
        run_at=run_at,
        tenant_id=tenant_id,
        max_attempts=max_attempts,
    )
    session.execute(
        update(m.Job)
        .where(m.Job.kind == kind, m.Job.key == key, m.Job.status != "running")
        .values(
            payload=payload,
            status="queued",
            run_at=run_at or now,
            attempts=0,
            locked_by=None,
            locked_until=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def fail(
    session: Session,
    job_id: int,
    worker_id: str,
    *,
    error: str,
    now: dt.datetime,
    retry_at: dt.datetime | None,
) -> None:
    """Record the error; reschedule, or park as ``dead`` when ``retry_at`` is None."""
    session.execute(
        update(m.Job)
        .where(m.Job.id == job_id, m.Job.locked_by == worker_id)
        .values(
            status="queued" if retry_at else "dead",
            run_at=retry_at or now,
            locked_by=None,
            locked_until=None,
            last_error=error[:4000],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def counts(session: Session) -> dict[str, int]:
    from sqlalchemy import func

    rows = session.execute(select(m.Job.status, func.count()).group_by(m.Job.status)).all()
    return {str(status): int(n) for status, n in rows}
