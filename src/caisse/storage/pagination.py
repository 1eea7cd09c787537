"""Stripe-style cursor pagination: ``limit`` (1–100), ``starting_after``/``ending_before`` ids.

Ids are time-sortable (``caisse.ids``), so ``id`` order is creation order; lists are newest
first, as Stripe's are.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from caisse.errors import InvalidRequest

T = TypeVar("T")


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return 10
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100", param="limit")
    return limit


def page(
    session: Session,
    stmt: Select[Any],
    id_col: InstrumentedAttribute[str],
    *,
    limit: int | None,
    starting_after: str | None,
    ending_before: str | None = None,
) -> tuple[list[Any], bool]:
    n = clamp_limit(limit)
    if starting_after and ending_before:
        raise InvalidRequest("Use starting_after or ending_before, not both", param="ending_before")
    if starting_after:
        rows = list(
            session.scalars(
                stmt.where(id_col < starting_after).order_by(id_col.desc()).limit(n + 1)
            )
        )
    elif ending_before:
        rows = list(
            session.scalars(stmt.where(id_col > ending_before).order_by(id_col.asc()).limit(n + 1))
        )
        has_more = len(rows) > n
        return list(reversed(rows[:n])), has_more
    else:
        rows = list(session.scalars(stmt.order_by(id_col.desc()).limit(n + 1)))
    return rows[:n], len(rows) > n


def listing(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": url, "data": data, "has_more": has_more}
