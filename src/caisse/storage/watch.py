"""How an idle worker notices work that another process stored, without claiming (a write).

A worker is woken at once by its own process (``Runtime.wake_workers``), but an event stored by
``caisse serve --no-worker``, or a job enqueued by another worker, is only seen by looking. A
claim is a write transaction (on SQLite it takes the database's one write lock), too dear to run
every few milliseconds; a look is not:

- SQLite: ``PRAGMA data_version`` on a connection kept for it, which changes when any other
  connection commits: a few microseconds, no query, no lock;
- PostgreSQL: one indexed ``SELECT … LIMIT 1`` per queue on a connection kept for it.

Work that becomes due by the clock alone (a retry's ``run_at``) is found by the worker's
regular claim every ``worker_poll_interval``, not by the look.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

from sqlalchemy import Connection

from caisse.storage import inbound
from caisse.storage import jobs as jobstore
from caisse.storage.db import Database


class WorkWatch:
    def __init__(self, db: Database, *, events: bool, kinds: tuple[str, ...] | None) -> None:
        self._db = db
        self._events = events
        self._kinds = kinds
        self._raw: Any = None  # SQLite: the DBAPI connection that reads data_version
        self._version: int | None = None
        self._conn: Connection | None = None  # PostgreSQL

    async def look(self, now: dt.datetime) -> bool:
        """:meth:`work_waiting` from the event loop: SQLite's look is microseconds and runs
        inline; PostgreSQL's is a round trip, run in a thread."""
        if self._db.is_sqlite:
            return self.work_waiting(now)
        return await asyncio.to_thread(self.work_waiting, now)

    def work_waiting(self, now: dt.datetime) -> bool:
        """True when there may be work to claim (a false alarm costs one empty claim)."""
        try:
            if self._db.is_sqlite:
                return self._sqlite_changed()
            return self._pg_ready(now)
        except Exception:
            self.close()  # the database went away: the worker's next claim says so
            return True

    def _sqlite_changed(self) -> bool:
        if self._raw is None:
            self._raw = self._db.engine.raw_connection()
        cursor = self._raw.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            version = int(cursor.fetchone()[0])
        finally:
            cursor.close()
        changed = self._version is not None and version != self._version
        self._version = version
        return changed

    def _pg_ready(self, now: dt.datetime) -> bool:
        if self._conn is None:
            self._conn = self._db.engine.connect()
        conn = self._conn
        try:
            if self._events and inbound.any_ready(conn, now=now):
                return True
            return jobstore.any_ready(conn, now=now, kinds=self._kinds)
        finally:
            conn.rollback()  # end the read transaction: hold no snapshot between looks

    def close(self) -> None:
        raw, self._raw, self._version = self._raw, None, None
        conn, self._conn = self._conn, None
        for closable in (raw, conn):
            if closable is not None:
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    closable.close()
