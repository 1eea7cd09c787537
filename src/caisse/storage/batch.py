"""Reads shared and writes held by one processing transaction (:func:`held`).

A worker applies up to ten provider events per transaction. Applied one by one, each event
reads its order, the order's payments, refunds, disputes and documents and its tenant's
endpoints, then writes its timeline, message, deliveries and jobs: fifteen statements for a
paid order, each a round trip to PostgreSQL and a pass through SQLAlchemy and the driver. That
per-statement cost, not the database's work, was most of what processing an event cost.

Inside :func:`held`, the reads are made once for every event of the transaction
(:func:`remember` keeps what was read; :func:`take` hands a row out once, for rows the
transaction then changes) and the plain writes wait in the session (:func:`defer`) until the
end, where rows of one statement go out together, as one multi-row statement. Outside
:func:`held` (API calls, reconciliation), :func:`defer` writes at once, so callers need not
know which path they are on.

Held writes are invisible to the transaction's own reads: whoever reads a table the
transaction may have written sends them first (:func:`flush`), as ``orders.load_rows`` does
before reading an order a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

_KEY = "caisse.storage.batch"

Then = Callable[[CursorResult[Any], list[dict[str, Any]]], None]
"""Called with a statement's result and the rows it was executed for."""


@dataclass(slots=True)
class _Held:
    rows: list[dict[str, Any]] = field(default_factory=list)
    then: Then | None = None


@dataclass(slots=True)
class _Batch:
    # Insertion-ordered: a statement is sent where its first rows were held, so a row never
    # goes out before the rows it refers to (a delivery after its message).
    writes: dict[tuple[Executable, tuple[str, ...]], _Held] = field(default_factory=dict)
    reads: dict[Any, Any] = field(default_factory=dict)


@contextmanager
def held(session: Session) -> Iterator[None]:
    """Hold plain writes and keep shared reads until the block ends; the writes are sent
    when it ends normally, and dropped with the transaction when it raises."""
    session.info[_KEY] = _Batch()
    try:
        yield
        flush(session)
    finally:
        session.info.pop(_KEY, None)


def active(session: Session) -> bool:
    return _KEY in session.info


def defer(
    session: Session,
    statement: Executable,
    rows: list[dict[str, Any]],
    *,
    then: Then | None = None,
) -> None:
    """Execute ``statement`` for ``rows`` now, or at the end of :func:`held`. ``then`` gets
    the result, once per execution: when held, of every row held with this statement (so give
    the same ``then`` for the same statement)."""
    if not rows:
        return
    batch: _Batch | None = session.info.get(_KEY)
    if batch is None:
        result = session.connection().execute(statement, rows)
        if then is not None:
            then(result, rows)
        return
    # One executemany needs one set of keys: rows with other keys are another statement.
    entry = batch.writes.setdefault((statement, tuple(rows[0])), _Held())
    entry.rows.extend(rows)
    if then is not None:
        entry.then = then


def flush(session: Session) -> None:
    """Send the held writes, in the order their statements were first held."""
    batch: _Batch | None = session.info.get(_KEY)
    if batch is None or not batch.writes:
        return
    writes, batch.writes = batch.writes, {}
    conn = session.connection()
    for (statement, _), entry in writes.items():
        result = conn.execute(statement, entry.rows)
        if entry.then is not None:
            entry.then(result, entry.rows)


def remember(session: Session, key: Any, value: Any) -> None:
    """Keep a read for the rest of :func:`held` (nothing is kept outside it)."""
    batch: _Batch | None = session.info.get(_KEY)
    if batch is not None:
        batch.reads[key] = value


_MISSING = object()


def recall(session: Session, key: Any, read: Callable[[], Any]) -> Any:
    """What :func:`remember` kept under ``key``, else ``read()`` (kept in turn): for rows the
    transaction reads but never writes."""
    batch: _Batch | None = session.info.get(_KEY)
    if batch is None:
        return read()
    value = batch.reads.get(key, _MISSING)
    if value is _MISSING:
        value = batch.reads[key] = read()
    return value


def take(session: Session, key: Any) -> Any | None:
    """What :func:`remember` kept under ``key``, once: for rows the transaction changes, which
    a second use must read again (after :func:`flush`)."""
    batch: _Batch | None = session.info.get(_KEY)
    return None if batch is None else batch.reads.pop(key, None)
