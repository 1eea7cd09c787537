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
import json
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update
from sqlalchemy.orm import Session

from caisse.storage import models as m

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
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._statements: dict[int, str] = {}

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
            # reads it as the column's jsonb.
            row[_HEADERS_INDEX] = json.dumps(row[_HEADERS_INDEX])
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
        raw = self._engine.raw_connection()
        try:
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
            else:
                from psycopg import Connection, RawCursor

                driver = raw.driver_connection
                assert isinstance(driver, Connection)
                with RawCursor(driver) as pg:
                    for sql, params in statements:
                        pg.execute(sql, params)
                raw.commit()
        except BaseException:
            raw.invalidate()  # whatever state the transaction is in, the connection is dropped
            raise
        finally:
            raw.close()


def claim(
    session: Session,
    worker_id: str,
    *,
    now: dt.datetime,
    limit: int = 50,
    lease_seconds: float = 120,
) -> list[str]:
    """Lease up to ``limit`` events due for processing; ``SKIP LOCKED`` on PostgreSQL."""
    ready = and_(
        m.InboundEvent.status.in_(PROCESSABLE),
        m.InboundEvent.run_at <= now,
        or_(m.InboundEvent.locked_until.is_(None), m.InboundEvent.locked_until < now),
    )
    pick = (
        select(m.InboundEvent.id)
        .where(ready)
        .order_by(m.InboundEvent.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.execute(pick).scalars())
    if ids:
        session.execute(
            update(m.InboundEvent)
            .where(m.InboundEvent.id.in_(ids))
            .values(locked_by=worker_id, locked_until=now + dt.timedelta(seconds=lease_seconds))
            .execution_options(synchronize_session=False)
        )
    return ids


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
