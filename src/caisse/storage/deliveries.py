"""The delivery worker's reads and writes, in Core: what an attempt needs, and its outcome.

Each delivery runs these once per attempt, so they skip the ORM's identity map, unit of work
and per-statement compile plugins (two thirds of a delivery's database time when they went
through ORM objects): prebuilt statements run on the session's connection, rows come back as
small plain objects the worker changes, and the changes go back as executemany updates of one
shape. The rare paths (an endpoint to disable, a delivery whose endpoint went away) stay on
ORM objects in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from caisse.storage import models as m

_DELIVERIES: Table = m.Delivery.__table__  # type: ignore[assignment]
_ENDPOINTS: Table = m.Endpoint.__table__  # type: ignore[assignment]
_MESSAGES: Table = m.Message.__table__  # type: ignore[assignment]
_ATTEMPTS: Table = m.DeliveryAttempt.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AttemptInput:
    """What one attempt needs, read in one join."""

    delivery_id: str
    delivery_status: str
    endpoint_id: str
    endpoint_status: str
    url: str
    api_key: str | None  # encrypted
    secrets: list[dict[str, Any]]
    message_id: str
    payload: dict[str, Any]


_INPUTS = (
    select(
        _DELIVERIES.c.id,
        _DELIVERIES.c.status,
        _ENDPOINTS.c.id,
        _ENDPOINTS.c.status,
        _ENDPOINTS.c.url,
        _ENDPOINTS.c.api_key,
        _ENDPOINTS.c.secrets,
        _MESSAGES.c.id,
        _MESSAGES.c.payload,
    )
    .join(_ENDPOINTS, _ENDPOINTS.c.id == _DELIVERIES.c.endpoint_id)
    .join(_MESSAGES, _MESSAGES.c.id == _DELIVERIES.c.message_id)
    .where(_DELIVERIES.c.id.in_(bindparam("ids", expanding=True)))
)


def attempt_inputs(conn: Connection, delivery_ids: list[str]) -> dict[str, AttemptInput]:
    """By delivery id; a delivery that no longer exists is absent."""
    rows = conn.execute(_INPUTS, {"ids": delivery_ids})
    return {r[0]: AttemptInput(*r) for r in rows}


@dataclass(slots=True)
class DeliveryState:
    """The columns an attempt's outcome changes, as read under lock and then changed."""

    id: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass(slots=True)
class EndpointHealth:
    id: str
    status: str
    failing_since: dt.datetime | None


_STATE_COLUMNS = (
    "id",
    "endpoint_id",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
    "updated_at",
)
_LOCK_DELIVERIES = (
    select(*(_DELIVERIES.c[c] for c in _STATE_COLUMNS))
    .where(_DELIVERIES.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_DELIVERIES.c.id)
    .with_for_update()
)
_LOCK_ENDPOINTS = (
    select(_ENDPOINTS.c.id, _ENDPOINTS.c.status, _ENDPOINTS.c.failing_since)
    .where(_ENDPOINTS.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_ENDPOINTS.c.id)
    .with_for_update()
)
_SAVE_DELIVERY = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"))
    .values({c: bindparam(f"b_{c}") for c in _STATE_COLUMNS[2:]})
)
_SAVE_HEALTH = (
    update(_ENDPOINTS)
    .where(_ENDPOINTS.c.id == bindparam("b_id"))
    .values(failing_since=bindparam("b_failing_since"))
)
_INSERT_ATTEMPTS = insert(_ATTEMPTS)


def lock_for_outcomes(
    conn: Connection, endpoint_ids: set[str], delivery_ids: set[str]
) -> tuple[dict[str, EndpointHealth], dict[str, DeliveryState]]:
    """Load and lock endpoints first, then deliveries, each in id order (the same order in
    every transaction, so two workers' batches never wait on each other in a circle)."""
    endpoints = {
        r[0]: EndpointHealth(*r)
        for r in conn.execute(_LOCK_ENDPOINTS, {"ids": sorted(endpoint_ids)})
    }
    deliveries = {
        r[0]: DeliveryState(*r)
        for r in conn.execute(_LOCK_DELIVERIES, {"ids": sorted(delivery_ids)})
    }
    return endpoints, deliveries


def save_outcomes(
    conn: Connection,
    deliveries: list[DeliveryState],
    health: list[EndpointHealth],
    attempts: list[dict[str, Any]],
) -> None:
    """The changed deliveries and endpoint health, and the attempt rows (full rows)."""
    if deliveries:
        conn.execute(
            _SAVE_DELIVERY,
            [
                {f"b_{c}": getattr(d, c) for c in _STATE_COLUMNS if c != "endpoint_id"}
                for d in deliveries
            ],
        )
    if health:
        conn.execute(
            _SAVE_HEALTH, [{"b_id": h.id, "b_failing_since": h.failing_since} for h in health]
        )
    if attempts:
        conn.execute(_INSERT_ATTEMPTS, attempts)
