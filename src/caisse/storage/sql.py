"""Small dialect-aware helpers shared by the repositories."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert

from caisse.errors import Conflict


def insert_ignore(session: Session, table: Table, *, conflict: list[str]) -> Insert:
    """``INSERT … ON CONFLICT (cols) DO NOTHING`` for the session's dialect: idempotency by
    unique constraint, never check-then-insert."""
    return _insert_ignore(session.get_bind().dialect.name, table, tuple(conflict))


@functools.cache
def _insert_ignore(dialect: str, table: Table, conflict: tuple[str, ...]) -> Insert:
    # One statement per table and dialect, built once: the hot path enqueues jobs per event.
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return stmt  # type: ignore[no-any-return]


def any_row(session: Session | Connection, *where: ColumnElement[bool], of: Any) -> bool:
    """Whether a row of ``of`` (a primary-key column) matches: one indexed ``LIMIT 1`` read."""
    return session.execute(select(of).where(*where).limit(1)).first() is not None


@contextmanager
def conflict_on_duplicate(message: str, *, param: str | None = None) -> Iterator[None]:
    """Turn a unique-constraint violation (a concurrent writer won the race a prior check
    could not see) into ``Conflict``, so no ``IntegrityError`` leaves ``storage``."""
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(message, param=param) from exc
