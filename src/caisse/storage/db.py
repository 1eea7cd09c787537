"""Engine and session factory for SQLite (embedded default) and PostgreSQL (scale-out).

SQLite runs in WAL mode with ``synchronous=FULL`` (an acknowledged event survives power loss),
8 KB pages (for files created by caisse), foreign keys on, and a busy timeout. Transactions that
write open with ``BEGIN IMMEDIATE`` so two writers never deadlock on a read-to-write lock
upgrade: SQLite serialises writers, PostgreSQL uses row locks (``FOR UPDATE``, ``SKIP LOCKED``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from caisse.errors import StorageUnavailable


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=20,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=20,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )
    _ping_when_idle(engine)
    return engine


IDLE_PING_SECONDS = 2.0
"""A pooled PostgreSQL connection idle for longer is pinged before it is used again. A server
restart, a failover or an idle timeout closes connections that sit in the pool; one used
moments ago is alive or, if it dies in use, fails its statement, after which SQLAlchemy
replaces every connection of the pool (and the job or event is retried). ``pool_pre_ping``
pinged at every checkout: one round trip more in every transaction of the hot path."""

_IDLE_SINCE = "caisse.idle_since"


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)  # none yet: connected just now
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool drops it and checks out another
            raise DisconnectionError(f"pooled connection lost: {exc}") from exc


SQLITE_PAGE_SIZE = "PRAGMA page_size=8192"
"""Taken only by a new, empty file (the migrations issue it too, before the first table), and
only before WAL mode is set; a no-op on an existing database. A ~3 KB inbound event fills a 4 KB
page on its own, 8 KB pages hold two: a batch writes about half the WAL frames (measured: some
20% less ingest writer CPU per event)."""


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling is off so that we choose BEGIN vs BEGIN IMMEDIATE.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(SQLITE_PAGE_SIZE)  # before WAL mode, or a new file keeps 4 KB pages
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        # SQLite's own lower() folds ASCII letters only, so "Élodie" ILIKE "%élodie%" (which
        # SQLAlchemy writes as lower() LIKE lower() here) was false; Python's folds every
        # letter, as PostgreSQL does. No index is built on lower(): nothing stored depends on it.
        dbapi_conn.create_function("lower", 1, _unicode_lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _unicode_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


_SQLITE_LOCKS: dict[str, threading.RLock] = {}
_SQLITE_LOCKS_GUARD = threading.Lock()


def sqlite_write_lock(url: str) -> threading.RLock:
    """The process's lock for writing one SQLite file.

    SQLite lets one writer in at a time; threads that collide inside SQLite wait in its busy
    handler, which *sleeps* (1, 2, 5 … 100 ms) instead of waking when the lock frees. Taking
    turns on a Python lock first keeps each write at its own cost. Other processes still meet
    in SQLite's busy handler.
    """
    with _SQLITE_LOCKS_GUARD:
        lock = _SQLITE_LOCKS.get(url)
        if lock is None:
            lock = _SQLITE_LOCKS[url] = threading.RLock()
        return lock


class Database:
    """One engine and its session factories; built once per process from the settings."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock = sqlite_write_lock(url) if self.is_sqlite else None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(sqlite_immediate=False)
        self._readers = sessionmaker(reader, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error; DB outages become 503s."""
        with self.write_turn(), _translate_outage():
            session = self._sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    def write_turn(self) -> threading.RLock | nullcontext[None]:
        """Hold while writing outside ``write()`` (raw connections): SQLite's turn, if any."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _translate_outage():
            session = self._readers()
            try:
                yield session
            finally:
                session.close()  # ends the transaction; loaded objects stay readable

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except DBAPIError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


_OUTAGE_MARKERS = (
    "connection refused",
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "database is locked",
    "unable to open database",
    "disk i/o error",
    "no such table",
    "the database system is",
    "connection timeout",
    "timeout expired",
)


def is_outage(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OperationalError) or any(m in text for m in _OUTAGE_MARKERS)


@contextmanager
def _translate_outage() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        if exc.connection_invalidated or is_outage(exc):
            raise StorageUnavailable("The database is unavailable") from exc
        raise
