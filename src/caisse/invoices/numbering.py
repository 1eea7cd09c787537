"""Gapless invoice numbers: one sequence per tenant, environment, series and year.

Policy: the counter row is bumped with ``UPDATE … SET last_value = last_value + 1 RETURNING``
(created first, with ``INSERT … ON CONFLICT DO NOTHING``, when the year's counter is missing),
which takes the row's write lock (PostgreSQL row lock, held to commit; SQLite's single writer,
``BEGIN IMMEDIATE``), in the same transaction that inserts the invoice row carrying the number.
Either both commit or neither does: a crash or an error after numbering rolls the number back,
so numbers have no gap and no duplicate, whatever the number of workers. The lock is held only
for that short transaction; rendering happens after commit, from the invoice's snapshot.

Live numbers read ``F2026-000001``; test numbers live in their own series, ``TEST-2026-000001``,
so test documents never consume or resemble a live number. Invoices and credit notes share the
sequence of their environment (one chronological series, as French rules allow).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from caisse.storage import models as m
from caisse.storage.sql import insert_ignore

SERIES = {"live": "F", "test": "TEST"}


def series_for(environment: str) -> str:
    return SERIES[environment]


def format_number(series: str, year: int, value: int) -> str:
    """``F2026-000001`` (live) or ``TEST-2026-000001`` (test)."""
    separator = "-" if series == "TEST" else ""
    return f"{series}{separator}{year}-{value:06d}"


def take_next(session: Session, *, tenant_id: str, environment: str, year: int) -> tuple[str, int]:
    """Reserve the next value of the sequence, inside the caller's transaction; returns
    ``(series, value)``. The caller must insert the invoice in the same transaction."""
    series = series_for(environment)
    keys = {"tenant_id": tenant_id, "environment": environment, "series": series, "year": year}
    bump = (
        update(m.InvoiceSequence)
        .where(*(getattr(m.InvoiceSequence, k) == v for k, v in keys.items()))
        .values(last_value=m.InvoiceSequence.last_value + 1)
        .returning(m.InvoiceSequence.last_value)
        .execution_options(synchronize_session=False)
    )
    value = session.execute(bump).scalar_one_or_none()
    if value is None:  # the first number of the year: create the counter, then bump it
        table = m.InvoiceSequence.__table__
        session.execute(
            insert_ignore(session, table, conflict=list(keys)),  # type: ignore[arg-type]
            [{**keys, "last_value": 0}],
        )
        value = session.execute(bump).scalar_one()
    return series, int(value)
