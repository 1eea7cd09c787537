"""Inbound events: the ingest hot path's one write, and the claiming of events to process.

``InboundBatchWriter`` bypasses the ORM and SQLAlchemy's per-row parameter processing and hands
pre-rendered SQL and plain tuples to the driver's ``executemany`` (pysqlite loops in C; psycopg 3
pipelines), one transaction per batch, ``ON CONFLICT DO NOTHING`` on the event's unique key so a
duplicate delivery adds nothing. The row is its own processing job, so there is no second
insert. Values are written in exactly the form the ORM types read back (checked by
``tests/integration/storage/test_inbound.py``).

Bodies are zlib-compressed (level 1) when that saves at least a quarter: SQLite's commit cost
grows with the bytes written, and Stripe's JSON compresses three to four times.
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
_TIMES = frozenset({"provider_created_at", "run_at", "received_at"})
_JSON = frozenset({"headers"})
PROCESSABLE = ("pending", "retrying")


def encode_body(body: bytes) -> tuple[bytes, str]:
    packed = zlib.compress(body, 1)
    if len(packed) * 4 <= len(body) * 3:
        return packed, "zlib"
    return body, "identity"


def _sqlite_time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    v = value.astimezone(dt.UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d} {v.hour:02d}:{v.minute:02d}:"
        f"{v.second:02d}.{v.microsecond:06d}"
    )


class InboundBatchWriter:
    """Writes batches through a raw driver connection borrowed from the engine's pool."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        mark = "?" if self._sqlite else "%s"
        cols = ", ".join(EVENT_COLUMNS)
        marks = ", ".join([mark] * len(EVENT_COLUMNS))
        self._sql = (
            f"INSERT INTO inbound_events ({cols}) VALUES ({marks}) "  # noqa: S608
            "ON CONFLICT (tenant_id, provider, provider_event_id) DO NOTHING"
        )
        self._jsonb: Any = None
        if not self._sqlite:
            from psycopg.types.json import Jsonb

            self._jsonb = Jsonb

    def _row(self, data: dict[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for col in EVENT_COLUMNS:
            value = data.get(col)
            if col in _TIMES:
                value = _sqlite_time(value) if self._sqlite else value
            elif col in _JSON:
                value = json.dumps(value) if self._sqlite else self._jsonb(value)
            out.append(value)
        return tuple(out)

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        rows = [self._row(e) for e in events]
        raw = self._engine.raw_connection()
        try:
            cur = raw.cursor()
            if self._sqlite:
                cur.execute("BEGIN IMMEDIATE")
            cur.executemany(self._sql, rows)
            if self._sqlite:
                cur.execute("COMMIT")
            else:
                raw.commit()
            cur.close()
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
