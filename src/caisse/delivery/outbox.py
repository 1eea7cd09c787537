"""Fan-out of partner messages to endpoints, inside the message's own transaction (the outbox),
and the manual controls on top of it: retry one delivery, replay an endpoint's failures.

A message creates one ``Delivery`` per *enabled* endpoint of the same tenant and environment
whose ``event_types`` match (empty = all), and one ``deliver`` job per delivery (key = the
delivery id). Test messages therefore never reach a live endpoint, and a crash between the
order change and the fan-out cannot happen: they commit together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, insert, or_, select
from sqlalchemy.orm import Session

from caisse import ids
from caisse.delivery.endpoints import get_endpoint
from caisse.errors import Conflict, NotFound
from caisse.orders import messages
from caisse.storage import batch
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.tenants.services import Caller

__all__ = [
    "JOB_KIND",
    "PREVIEW_BYTES",
    "REPLAY_BATCH",
    "AttemptInProgress",
    "delivery_view",
    "fan_out",
    "install",
    "matches",
    "messages_query",
    "replay",
    "retry_delivery",
]

JOB_KIND = "deliver"
#: The handler keeps its own schedule; this only bounds crash loops (handler exceptions).
JOB_MAX_ATTEMPTS = 50
REPLAY_BATCH = 1000
#: Lists show the first bytes of each answer; one delivery's GET shows all that was kept.
PREVIEW_BYTES = 1024


class AttemptInProgress(Conflict):
    """A manual retry asked while an attempt of the same delivery is running: the running
    attempt decides what comes next, so the retry would be silently lost; say so instead."""

    code = "attempt_in_progress"


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


_ENABLED_ENDPOINTS = select(m.Endpoint.id, m.Endpoint.event_types).where(
    m.Endpoint.tenant_id == bindparam("tenant_id"),
    m.Endpoint.environment == bindparam("environment"),
    m.Endpoint.status == "enabled",
)
_INSERT_DELIVERIES = insert(m.Delivery.__table__)  # type: ignore[arg-type]


def fan_out(session: Session, message: m.Message, now: dt.datetime) -> None:
    """The ``messages.SINKS`` entry: deliveries + jobs for the matching endpoints."""
    key = {"tenant_id": message.tenant_id, "environment": message.environment}

    def read() -> Sequence[Any]:
        return session.connection().execute(_ENABLED_ENDPOINTS, key).all()

    # Read once per transaction: a batch of events fans out to the same few tenants.
    endpoints = batch.recall(session, ("endpoints", *key.values()), read)
    _create_deliveries(
        session,
        [
            (message, endpoint_id)
            for endpoint_id, types in endpoints
            if matches(types, message.type)
        ],
        now,
    )


def _create_deliveries(
    session: Session, pairs: list[tuple[m.Message, str]], now: dt.datetime
) -> None:
    """One delivery and its ``deliver`` job per (message, endpoint id), in two statements."""
    if not pairs:
        return
    made = [_new_delivery(message, endpoint_id, now) for message, endpoint_id in pairs]
    batch.defer(session, _INSERT_DELIVERIES, [row for row, _ in made])
    jobstore.insert_rows(session, [job for _, job in made])


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
    running = session.scalar(
        select(m.Job.id).where(
            m.Job.kind == JOB_KIND,
            m.Job.key == delivery.id,
            m.Job.status == "running",
            m.Job.locked_until > now,
        )
    )
    if running is not None:
        raise AttemptInProgress(
            "An attempt of this delivery is in progress; retry once it has ended", param="id"
        )
    _requeue(session, delivery, now)
    return delivery


def replay(
    session: Session, caller: Caller, endpoint_id: str, *, since: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    """Queue again, oldest first, the endpoint's failed deliveries since ``since`` and the
    matching messages it missed while disabled; at most ``REPLAY_BATCH`` per call
    (``has_more`` says to call again). Messages older than the endpoint are never sent: a
    partner registered today does not receive last year's orders, whatever ``since`` says."""
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
                m.Message.created_at >= max(since, endpoint.created_at),
                ~has_delivery,
            )
            .order_by(m.Message.id)
        )
        if endpoint.event_types:
            stmt = stmt.where(m.Message.type.in_(endpoint.event_types))
        missed = list(session.scalars(stmt.limit(room + 1)))
        more = more or len(missed) > room
        _create_deliveries(session, [(message, endpoint.id) for message in missed[:room]], now)
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


def attempt_view(a: m.DeliveryAttempt, *, full_response: bool = False) -> dict[str, Any]:
    """One attempt; ``response`` is the first ``PREVIEW_BYTES`` of the answer unless
    ``full_response`` (then all that was kept, 64 KiB at most). ``response_truncated`` says
    the partner sent more than is shown."""
    body = a.response_body or b""
    shown = body if full_response else body[:PREVIEW_BYTES]
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
        "response": None if a.response_body is None else shown.decode("utf-8", errors="replace"),
        "response_truncated": a.response_truncated or len(shown) < len(body),
        "retry_after": a.retry_after,
        "location": a.location,
        "webhook_id": a.webhook_id,
        "webhook_timestamp": a.webhook_timestamp,
        "next_attempt": _ts(a.next_attempt_at),
        "decision": a.decision,
    }


def delivery_view(
    d: m.Delivery, attempts: list[m.DeliveryAttempt] | None = None, *, full_response: bool = False
) -> dict[str, Any]:
    """The one JSON shape of a delivery, with its attempts when given (lists show answer
    previews, a single delivery the full kept answer: ``full_response``)."""
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
        view["attempts"] = [attempt_view(a, full_response=full_response) for a in attempts]
    return view


def messages_query(
    caller: Caller, *, endpoint: m.Endpoint | None = None, undelivered: bool = False
) -> Select[m.Message]:
    """Partner messages of the caller's environment, for ``GET /v1/messages``.

    ``undelivered``: never delivered — with ``endpoint``, every message meant for it (its
    types, created since it exists) that it has not received, missed while disabled included;
    without, every message with a delivery not (yet) delivered or with no delivery at all.
    ``endpoint`` alone: the messages that have a delivery to it.
    """
    stmt = select(m.Message).where(
        m.Message.tenant_id == caller.tenant_id, m.Message.environment == caller.environment
    )
    to_message = m.Delivery.message_id == m.Message.id
    if endpoint is not None and undelivered:
        received = exists().where(
            to_message, m.Delivery.endpoint_id == endpoint.id, m.Delivery.status == "delivered"
        )
        stmt = stmt.where(m.Message.created_at >= endpoint.created_at, ~received)
        if endpoint.event_types:
            stmt = stmt.where(m.Message.type.in_(endpoint.event_types))
    elif endpoint is not None:
        stmt = stmt.where(exists().where(to_message, m.Delivery.endpoint_id == endpoint.id))
    elif undelivered:
        waiting = exists().where(to_message, m.Delivery.status != "delivered")
        stmt = stmt.where(or_(waiting, ~exists().where(to_message)))
    return stmt


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
