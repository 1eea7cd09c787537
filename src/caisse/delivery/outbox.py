"""Fan-out of partner messages to endpoints, inside the message's own transaction (the outbox),
and the manual controls on top of it: retry one delivery, replay an endpoint's failures.

A message creates one ``Delivery`` per *enabled* endpoint of the same tenant and environment
whose ``event_types`` match (empty = all), and one ``deliver`` job per delivery (key = the
delivery id). Test messages therefore never reach a live endpoint, and a crash between the
order change and the fan-out cannot happen: they commit together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.delivery.endpoints import get_endpoint
from caisse.errors import Conflict, NotFound
from caisse.orders import messages
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.storage.sql import insert_ignore
from caisse.tenants.services import Caller

__all__ = [
    "JOB_KIND",
    "REPLAY_BATCH",
    "delivery_view",
    "fan_out",
    "install",
    "matches",
    "replay",
    "retry_delivery",
]

JOB_KIND = "deliver"
#: The handler keeps its own schedule; this only bounds crash loops (handler exceptions).
JOB_MAX_ATTEMPTS = 50
REPLAY_BATCH = 1000


def matches(event_types: list[str] | None, message_type: str) -> bool:
    """An endpoint with no filter takes every message type."""
    return not event_types or message_type in event_types


def _new_delivery(
    message: m.Message, endpoint_id: str, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    delivery_id = ids.new_id("delivery")
    row = {
        "id": delivery_id,
        "tenant_id": message.tenant_id,
        "environment": message.environment,
        "endpoint_id": endpoint_id,
        "message_id": message.id,
        "event_type": message.type,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    job = jobstore.job_row(
        JOB_KIND,
        delivery_id,
        {"endpoint_id": endpoint_id},
        now=now,
        tenant_id=message.tenant_id,
        max_attempts=JOB_MAX_ATTEMPTS,
    )
    return row, job


def fan_out(session: Session, message: m.Message, now: dt.datetime) -> None:
    """The ``messages.SINKS`` entry: deliveries + jobs for the matching endpoints."""
    endpoints = session.execute(
        select(m.Endpoint.id, m.Endpoint.event_types).where(
            m.Endpoint.tenant_id == message.tenant_id,
            m.Endpoint.environment == message.environment,
            m.Endpoint.status == "enabled",
        )
    ).all()
    rows, jobs = [], []
    for endpoint_id, event_types in endpoints:
        if matches(event_types, message.type):
            row, job = _new_delivery(message, endpoint_id, now)
            rows.append(row)
            jobs.append(job)
    if rows:
        session.execute(m.Delivery.__table__.insert(), rows)  # type: ignore[attr-defined]
        session.execute(
            insert_ignore(session, m.Job.__table__, conflict=["kind", "key"]),  # type: ignore[arg-type]
            jobs,
        )


def install() -> None:
    """Register the fan-out sink once (idempotent)."""
    if fan_out not in messages.SINKS:
        messages.SINKS.append(fan_out)


def _requeue(session: Session, delivery: m.Delivery, now: dt.datetime) -> None:
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.updated_at = now
    jobstore.requeue(
        session,
        JOB_KIND,
        delivery.id,
        {"endpoint_id": delivery.endpoint_id, "trigger": "manual"},
        now=now,
        tenant_id=delivery.tenant_id,
        max_attempts=JOB_MAX_ATTEMPTS,
    )


def retry_delivery(
    session: Session, caller: Caller, delivery_id: str, *, now: dt.datetime
) -> m.Delivery:
    """Try a delivery again now (one more attempt; a delivered one is sent again too)."""
    delivery = session.execute(
        select(m.Delivery)
        .where(
            m.Delivery.id == delivery_id,
            m.Delivery.tenant_id == caller.tenant_id,
            m.Delivery.environment == caller.environment,
        )
        .with_for_update()
    ).scalar_one_or_none()
    if delivery is None:
        raise NotFound(f"No such delivery: {delivery_id!r}", param="id")
    endpoint = session.get(m.Endpoint, delivery.endpoint_id)
    if endpoint is None or endpoint.status != "enabled":
        raise Conflict("The endpoint is disabled; enable it before retrying", param="id")
    _requeue(session, delivery, now)
    return delivery


def replay(
    session: Session, caller: Caller, endpoint_id: str, *, since: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    """Queue again, oldest first, the endpoint's failed deliveries since ``since`` and the
    matching messages it missed while disabled; at most ``REPLAY_BATCH`` per call
    (``has_more`` says to call again)."""
    endpoint = get_endpoint(session, caller, endpoint_id, lock=True)
    if endpoint.status != "enabled":
        raise Conflict("The endpoint is disabled; enable it before replaying", param="id")
    failed = list(
        session.scalars(
            select(m.Delivery)
            .where(
                m.Delivery.endpoint_id == endpoint.id,
                m.Delivery.status == "failed",
                m.Delivery.created_at >= since,
            )
            .order_by(m.Delivery.id)
            .limit(REPLAY_BATCH + 1)
        )
    )
    more = len(failed) > REPLAY_BATCH
    for delivery in failed[:REPLAY_BATCH]:
        _requeue(session, delivery, now)
    room = REPLAY_BATCH - min(len(failed), REPLAY_BATCH)
    missed: list[m.Message] = []
    if room:
        has_delivery = exists().where(
            and_(m.Delivery.message_id == m.Message.id, m.Delivery.endpoint_id == endpoint.id)
        )
        stmt = (
            select(m.Message)
            .where(
                m.Message.tenant_id == caller.tenant_id,
                m.Message.environment == caller.environment,
                m.Message.created_at >= since,
                ~has_delivery,
            )
            .order_by(m.Message.id)
        )
        if endpoint.event_types:
            stmt = stmt.where(m.Message.type.in_(endpoint.event_types))
        missed = list(session.scalars(stmt.limit(room + 1)))
        more = more or len(missed) > room
        rows, jobs = [], []
        for message in missed[:room]:
            row, job = _new_delivery(message, endpoint.id, now)
            rows.append(row)
            jobs.append(job)
        if rows:
            session.execute(m.Delivery.__table__.insert(), rows)  # type: ignore[attr-defined]
            session.execute(
                insert_ignore(session, m.Job.__table__, conflict=["kind", "key"]),  # type: ignore[arg-type]
                jobs,
            )
    return {
        "object": "replay",
        "endpoint_id": endpoint.id,
        "since": int(since.timestamp()),
        "requeued": min(len(failed), REPLAY_BATCH),
        "missed_messages": min(len(missed), room),
        "has_more": more,
    }


def _ts(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def attempt_view(a: m.DeliveryAttempt) -> dict[str, Any]:
    body = a.response_body or b""
    return {
        "id": a.id,
        "object": "delivery_attempt",
        "number": a.number,
        "trigger": a.trigger,
        "attempted": _ts(a.attempted_at),
        "url": a.url,
        "outcome": a.outcome,
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "error_kind": a.error_kind,
        "error": a.error,
        "response": body.decode("utf-8", errors="replace") if a.response_body is not None else None,
        "response_truncated": a.response_truncated,
        "retry_after": a.retry_after,
        "location": a.location,
        "webhook_id": a.webhook_id,
        "webhook_timestamp": a.webhook_timestamp,
        "next_attempt": _ts(a.next_attempt_at),
        "decision": a.decision,
    }


def delivery_view(d: m.Delivery, attempts: list[m.DeliveryAttempt] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": d.id,
        "object": "delivery",
        "endpoint_id": d.endpoint_id,
        "message_id": d.message_id,
        "event_type": d.event_type,
        "livemode": d.environment == "live",
        "status": d.status,
        "attempt_count": d.attempts,
        "next_attempt": _ts(d.next_attempt_at) if d.status == "pending" else None,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered": _ts(d.delivered_at),
        "created": _ts(d.created_at),
    }
    if attempts is not None:
        view["attempts"] = [attempt_view(a) for a in attempts]
    return view


def attempts_for(session: Session, delivery_ids: list[str]) -> dict[str, list[m.DeliveryAttempt]]:
    """Every attempt of these deliveries, oldest first, in one query."""
    out: dict[str, list[m.DeliveryAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        rows = session.scalars(
            select(m.DeliveryAttempt)
            .where(m.DeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(m.DeliveryAttempt.number, m.DeliveryAttempt.id)
        )
        for a in rows:
            out[a.delivery_id].append(a)
    return out


install()
