"""Inbound events: the ingest hot path's one write, and the claiming of events to process.

``InboundBatchWriter`` bypasses the ORM and SQLAlchemy's per-row parameter processing and hands
pre-rendered SQL and plain values to the driver: a batch is one multi-row ``INSERT`` and one
transaction, ``ON CONFLICT DO NOTHING`` on the event's unique key so a duplicate delivery adds
nothing. The row is its own processing job, so there is no second insert. Values are written in
exactly the form the ORM types read back (checked by ``tests/integration/storage/test_inbound.py``).

Bodies may be zlib-compressed (level 1, kept only when that saves at least a quarter; Stripe's
JSON compresses three to four times): ingest stores them as received and processing compresses
them (:func:`encode_body`), so the acknowledgement never waits for zlib.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from caisse.storage import models as m
from caisse.storage.sql import any_row

EVENT_COLUMNS = (
    "id",
    "tenant_id",
    "environment",
    "provider",
    "provider_event_id",
    "type",
    "provider_account_id",
    "provider_created_at",
    "body",
    "body_encoding",
    "headers",
    "remote_addr",
    "status",
    "attempts",
    "run_at",
    "received_at",
)
_TIME_INDEXES = tuple(
    EVENT_COLUMNS.index(c) for c in ("provider_created_at", "run_at", "received_at")
)
_HEADERS_INDEX = EVENT_COLUMNS.index("headers")
CHUNK_ROWS = 500
"""Rows per statement: 8,000 parameters, under PostgreSQL's 65,535 and SQLite's 32,766."""
PROCESSABLE = ("pending", "retrying")


def encode_body(body: bytes) -> tuple[bytes, str]:
    """``(stored bytes, body_encoding)``: zlib when it saves a quarter, else as is."""
    packed = zlib.compress(body, 1)
    if len(packed) * 4 <= len(body) * 3:
        return packed, "zlib"
    return body, "identity"


def _sqlite_time(value: dt.datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite ``DateTime`` writes: naive UTC, always with microseconds."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class InboundBatchWriter:
    """Writes batches through a raw driver connection borrowed from the engine's pool.

    A batch is ONE multi-row ``INSERT`` per 500 rows, not an ``executemany``: pysqlite releases
    and re-takes the GIL around every row, and each re-take can wait behind the busy event loop
    thread, so a 64-row ``executemany`` could hold a batch for a quarter of a second; psycopg
    sends one round trip. On PostgreSQL the statement uses native ``$n`` placeholders through a
    ``RawCursor``: psycopg's own ``%s`` conversion is a Python pass over the whole statement,
    uncached past 4 KB, which is what a batch statement is.

    A batch of up to 500 rows is one statement in autocommit mode, so it is its own
    transaction: one round trip to PostgreSQL (no ``BEGIN``, no separate ``COMMIT``), one
    statement step in SQLite. With ``keep_connection`` (the ingest writer thread) the connection
    stays checked out between batches (no pool checkout, no pre-ping round trip, and
    PostgreSQL's prepared statements stay warm); a PostgreSQL connection found broken is
    replaced by a fresh one and the batch sent once more, which the ``ON CONFLICT DO NOTHING``
    makes harmless even if the first attempt did commit. Call :meth:`close` when done.
    """

    def __init__(self, engine: Engine, *, keep_connection: bool = False) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._statements: dict[int, str] = {}
        self._keep = keep_connection
        self._held: PoolProxiedConnection | None = None

    def _statement(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            width = len(EVENT_COLUMNS)
            if self._sqlite:
                values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * rows)
            else:
                values = ", ".join(
                    "(" + ", ".join(f"${r * width + c}" for c in range(1, width + 1)) + ")"
                    for r in range(rows)
                )
            sql = (
                f"INSERT INTO inbound_events ({', '.join(EVENT_COLUMNS)}) VALUES {values} "  # noqa: S608
                "ON CONFLICT (tenant_id, provider, provider_event_id) DO NOTHING"
            )
            self._statements[rows] = sql
        return sql

    def _params(self, events: Sequence[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        sqlite = self._sqlite
        for data in events:
            row = list(map(data.get, EVENT_COLUMNS))
            if sqlite:
                seen, text = None, None  # run_at and received_at are usually one object
                for i in _TIME_INDEXES:
                    if row[i] is not seen:
                        seen, text = row[i], _sqlite_time(row[i])
                    row[i] = text
            # JSON text: SQLite stores it as is; psycopg sends a str untyped, and the server
            # reads it as the column's jsonb. pydantic-core's encoder: a seventh of json's cost.
            row[_HEADERS_INDEX] = to_json(row[_HEADERS_INDEX]).decode()
            out += row
        return out

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Insert ``events`` in one transaction; a duplicate (tenant, provider, event id) adds
        nothing. Commits before returning (durable), or raises with nothing written."""
        if not events:
            return
        statements = [
            (self._statement(len(chunk)), self._params(chunk))
            for chunk in (events[i : i + CHUNK_ROWS] for i in range(0, len(events), CHUNK_ROWS))
        ]
        raw, reused = self._held, True
        if raw is None:
            raw, reused = self._engine.raw_connection(), False
        try:
            try:
                self._execute(raw, statements)
            except BaseException:
                if not (reused and self._broken(raw)):
                    raise
                # A kept PostgreSQL connection that the server closed (restart, idle timeout):
                # once more on a fresh connection, which the pool pings first.
                raw.invalidate()
                raw = self._engine.raw_connection()
                self._execute(raw, statements)
        except BaseException:
            raw.invalidate()  # whatever state the transaction is in, the connection is dropped
            self._held = None
            raw.close()
            raise
        if self._keep:
            self._held = raw
        else:
            raw.close()

    def close(self) -> None:
        """Give a kept connection back to the pool."""
        raw, self._held = self._held, None
        if raw is not None:
            raw.close()

    def _broken(self, raw: PoolProxiedConnection) -> bool:
        if self._sqlite:
            return False
        driver = raw.driver_connection
        return bool(getattr(driver, "broken", False) or getattr(driver, "closed", False))

    def _execute(self, raw: PoolProxiedConnection, statements: list[tuple[str, list[Any]]]) -> None:
        if self._sqlite:
            cur = raw.cursor()
            if len(statements) == 1:
                # Autocommit: one statement is its own transaction (write lock taken at its
                # start, like BEGIN IMMEDIATE), committed with its fsync before it returns.
                cur.execute(*statements[0])
            else:
                cur.execute("BEGIN IMMEDIATE")
                for sql, params in statements:
                    cur.execute(sql, params)
                cur.execute("COMMIT")
            cur.close()
            return
        from psycopg import Connection, RawCursor

        driver = raw.driver_connection
        assert isinstance(driver, Connection)
        # Autocommit for this batch only: the pool hands the connection to others with
        # psycopg's default (a transaction opened by the first statement).
        driver.autocommit = True
        try:
            with RawCursor(driver) as pg:
                if len(statements) == 1:
                    pg.execute(*statements[0])  # its own transaction: one round trip
                else:
                    with driver.transaction():
                        for sql, params in statements:
                            pg.execute(sql, params)
        finally:
            if not driver.closed:
                driver.autocommit = False


def claim(
    session: Session,
    worker_id: str,
    *,
    now: dt.datetime,
    limit: int = 50,
    lease_seconds: float = 120,
) -> list[str]:
    """Lease up to ``limit`` events due for processing; ``SKIP LOCKED`` on PostgreSQL."""
    conn = session.connection()
    ids = list(conn.execute(_CLAIM_PICK, {"now": now, "limit": limit}).scalars())
    if ids:
        until = now + dt.timedelta(seconds=lease_seconds)
        conn.execute(_CLAIM_LEASE, {"ids": ids, "worker": worker_id, "until": until})
    return ids


def _ready(now: Any) -> ColumnElement[bool]:
    """Processable, due and not leased at ``now`` (a time or a bind)."""
    return and_(
        _EVENTS.c.status.in_(PROCESSABLE),
        _EVENTS.c.run_at <= now,
        or_(_EVENTS.c.locked_until.is_(None), _EVENTS.c.locked_until < now),
    )


_EVENTS: Table = m.InboundEvent.__table__  # type: ignore[assignment]
# Prebuilt (each worker runs them every round): no expression building, cached compilation.
_CLAIM_PICK = (
    select(_EVENTS.c.id)
    .where(_ready(bindparam("now")))
    .order_by(_EVENTS.c.run_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM_LEASE = (
    update(_EVENTS)
    .where(_EVENTS.c.id.in_(bindparam("ids", expanding=True)))
    .values(locked_by=bindparam("worker"), locked_until=bindparam("until"))
)


def any_waiting(session: Session | Connection, *, now: dt.datetime) -> bool:
    """Whether any event is due or being processed (leased or not): the foreground is busy."""
    waiting = (m.InboundEvent.status.in_(PROCESSABLE), m.InboundEvent.run_at <= now)
    return any_row(session, *waiting, of=m.InboundEvent.id)


def any_ready(session: Session | Connection, *, now: dt.datetime) -> bool:
    """Whether :func:`claim` would find an event, by a read that takes no write lock: how an
    idle worker notices events stored by another process."""
    return any_row(session, _ready(now), of=m.InboundEvent.id)


def release_failed(
    session: Session,
    event_id: str,
    *,
    error: str,
    retry_at: dt.datetime | None,
) -> None:
    """Record a processing failure; retry at ``retry_at`` or park as ``failed`` when None."""
    session.execute(
        update(m.InboundEvent)
        .where(m.InboundEvent.id == event_id, m.InboundEvent.status.in_(PROCESSABLE))
        .values(
            status="retrying" if retry_at else "failed",
            run_at=retry_at or m.InboundEvent.run_at,
            error=error[:4000],
            locked_by=None,
            locked_until=None,
            attempts=m.InboundEvent.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )


def requeue(session: Session, event_id: str, *, now: dt.datetime) -> None:
    """Make a stored event processable again (operator replay)."""
    session.execute(
        update(m.InboundEvent)
        .where(m.InboundEvent.id == event_id)
        .values(status="pending", run_at=now, locked_by=None, locked_until=None, error=None)
        .execution_options(synchronize_session=False)
    )
