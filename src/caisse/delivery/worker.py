"""The ``deliver`` job: send one message to one endpoint, record the attempt, plan the next.

Policy:

- one shared guarded httpx client per process (per event loop), built lazily from
  ``CAISSE_ALLOW_PRIVATE_TARGETS``; every connection is checked at connect time;
- each attempt is signed afresh (Standard Webhooks, every active secret, newest first) with
  the message id as ``webhook-id``, plus ``X-API-KEY`` when registered and
  ``User-Agent: caisse/<version>``;
- the attempt row, the delivery's new state, the endpoint's health and the job's next run are
  written in ONE transaction, so the log and the schedule never disagree;
- at most ``ENDPOINT_CONCURRENCY`` sends per endpoint in a worker process: a job whose
  endpoint is saturated waits ``BUSY_WAIT`` at most, then is put back ``BUSY_DELAY`` later
  without using an attempt, so a dead partner holds a handful of slots, never the worker;
- a run that finds its job claimed before without an outcome (the worker was killed, or the
  handler failed after sending) logs an ``interrupted`` attempt first: the partner may have
  received it, so at-least-once delivery shows in the log as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from caisse import __version__, ids
from caisse.delivery import signing
from caisse.delivery.endpoints import active_secrets, disable, get_endpoint
from caisse.delivery.http import SendResult, build_client, send
from caisse.delivery.outbox import JOB_KIND
from caisse.delivery.retry import RetryPolicy, endpoint_should_disable
from caisse.delivery.safety import Resolver
from caisse.jobs.registry import JobContext, handler
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.services import Caller

__all__ = [
    "BUSY_DELAY",
    "ENDPOINT_CONCURRENCY",
    "POLICY",
    "USER_AGENT",
    "close_clients",
    "deliver",
    "message_body",
    "send_test",
    "set_resolver",
]

log = logging.getLogger("caisse.delivery")

USER_AGENT = f"caisse/{__version__}"
POLICY = RetryPolicy()
ENDPOINT_CONCURRENCY = 4
BUSY_WAIT = 0.5
BUSY_DELAY = dt.timedelta(seconds=2)
MAX_INTERRUPTED = 5
_INTERRUPTED = "the worker stopped during this attempt; the partner may have received it"


@dataclass
class _LoopState:
    clients: dict[bool, httpx.AsyncClient] = field(default_factory=dict)
    slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)
_resolver: Resolver | None = None
# SQLite serialises writers and its busy handler sleeps (1, 2, 5 … 100 ms) when threads
# collide; taking turns in-process first keeps each write at its ~1 ms cost.
_SQLITE_WRITES = threading.Lock()


@contextlib.contextmanager
def _write(rt: Runtime) -> Iterator[Any]:
    lock = _SQLITE_WRITES if rt.db.is_sqlite else contextlib.nullcontext()
    with lock, rt.db.write() as session:
        yield session


def set_resolver(resolver: Resolver | None) -> None:
    """Use another DNS resolver for new clients (tests play DNS rebinding with it)."""
    global _resolver
    _resolver = resolver
    _STATES.clear()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _STATES.get(loop)
    if state is None:
        state = _STATES[loop] = _LoopState()
    return state


def client_for(rt: Runtime) -> httpx.AsyncClient:
    """The process's shared guarded client (one per event loop and SSRF setting)."""
    state = _state()
    allow = rt.settings.allow_private_targets
    client = state.clients.get(allow)
    if client is None:
        client = state.clients[allow] = build_client(
            allow_private=allow, resolver=_resolver, user_agent=USER_AGENT
        )
    return client


async def close_clients() -> None:
    """Close this loop's clients (worker shutdown)."""
    state = _STATES.pop(asyncio.get_running_loop(), None)
    if state is not None:
        for client in state.clients.values():
            await client.aclose()


def message_body(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent: ``{"type", "timestamp", "data"}`` in that order, compact UTF-8."""
    ordered = {"type": payload["type"], "timestamp": payload["timestamp"], "data": payload["data"]}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _headers(
    msg_id: str, timestamp: int, body: bytes, secrets: list[str], api_key: str | None
) -> dict[str, str]:
    out = signing.headers(msg_id, timestamp, body, secrets)
    if api_key:
        out["X-API-KEY"] = api_key
    return out


@dataclass(frozen=True, slots=True)
class _Plan:
    delivery_id: str
    endpoint_id: str
    url: str
    api_key: str | None
    secrets: list[str]
    message_id: str
    body: bytes


def _prepare(ctx: JobContext) -> _Plan | None:
    """Read what the attempt needs; None when there is nothing to send (job completed)."""
    rt, delivery_id = ctx.rt, ctx.job.key
    now = rt.clock.now()
    with rt.db.read() as s:
        row = s.execute(
            select(m.Delivery, m.Endpoint, m.Message)
            .join(m.Endpoint, m.Endpoint.id == m.Delivery.endpoint_id)
            .join(m.Message, m.Message.id == m.Delivery.message_id)
            .where(m.Delivery.id == delivery_id)
        ).first()
        if row is not None:
            d, ep, msg = row
            if d.status == "pending" and ep.status == "enabled":
                return _Plan(
                    delivery_id=d.id,
                    endpoint_id=ep.id,
                    url=ep.url,
                    api_key=rt.box.decrypt(ep.api_key) if ep.api_key else None,
                    secrets=active_secrets(rt.box, ep, now),
                    message_id=msg.id,
                    body=message_body(msg.payload),
                )
    with _write(rt) as s:
        gone = s.get(m.Delivery, delivery_id, with_for_update=True)
        if gone is not None and gone.status == "pending":  # its endpoint is disabled
            gone.status, gone.next_attempt_at, gone.updated_at = "failed", None, now
            gone.last_error = "endpoint disabled"
        ctx.complete(s)
    return None


def _describe(result: SendResult) -> str:
    if result.error_kind:
        return f"{result.error_kind}: {result.error or ''}".strip(": ")[:500]
    return f"HTTP {result.status_code}"


def _record(
    ctx: JobContext, plan: _Plan, result: SendResult, timestamp: int, interrupted: int
) -> None:
    """Attempt row(s) + delivery state + endpoint health + next run: one transaction."""
    rt = ctx.rt
    now = rt.clock.now()
    trigger = str(ctx.payload.get("trigger", "schedule"))
    with _write(rt) as s:
        d = s.get(m.Delivery, plan.delivery_id, with_for_update=True)
        if d is None:  # endpoint deleted meanwhile
            ctx.complete(s)
            return
        ep = s.get(m.Endpoint, d.endpoint_id, with_for_update=True)
        number = d.attempts
        for _ in range(interrupted):
            number += 1
            s.add(
                m.DeliveryAttempt(
                    id=ids.new_id("attempt"),
                    delivery_id=d.id,
                    endpoint_id=d.endpoint_id,
                    number=number,
                    trigger=trigger,
                    attempted_at=now,
                    url=plan.url,
                    webhook_id=plan.message_id,
                    webhook_timestamp=0,
                    outcome="interrupted",
                    duration_ms=0,
                    error_kind="interrupted",
                    error=_INTERRUPTED,
                )
            )
        number += 1
        decision = POLICY.decide(
            number,
            status_code=result.status_code,
            error_kind=result.error_kind,
            retry_after=result.retry_after,
            now=now,
        )
        s.add(
            m.DeliveryAttempt(
                id=ids.new_id("attempt"),
                delivery_id=d.id,
                endpoint_id=d.endpoint_id,
                number=number,
                trigger=trigger,
                attempted_at=now,
                url=plan.url,
                webhook_id=plan.message_id,
                webhook_timestamp=timestamp,
                outcome="succeeded" if result.ok else "failed",
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                error_kind=result.error_kind,
                error=result.error[:500] if result.error else None,
                response_body=result.body,
                response_truncated=result.truncated,
                retry_after=result.retry_after,
                location=result.location,
                next_attempt_at=decision.retry_at,
                decision=decision.reason[:200],
            )
        )
        disable_reason = None
        if ep is not None and not result.ok:
            if decision.disable_endpoint:
                disable_reason = "the partner answered 410 Gone"
            elif ep.failing_since is None:
                ep.failing_since = now
            elif endpoint_should_disable(ep.failing_since, now):
                disable_reason = "failing for 5 days without a single success"
        elif ep is not None:
            ep.failing_since = None
        if ep is not None and disable_reason and ep.status == "enabled":
            disable(s, ep, disable_reason, now=now)
        d.attempts = number
        d.last_status_code = result.status_code
        d.updated_at = now
        if result.ok:
            d.status, d.delivered_at, d.next_attempt_at, d.last_error = "delivered", now, None, None
        elif decision.retry_at is not None and ep is not None and ep.status == "enabled":
            d.status, d.next_attempt_at, d.last_error = (
                "pending",
                decision.retry_at,
                _describe(result),
            )
        else:
            d.status, d.next_attempt_at = "failed", None
            d.last_error = _describe(result) + (f"; {disable_reason}" if disable_reason else "")
        if d.status == "pending":
            assert decision.retry_at is not None
            ctx.reschedule(s, decision.retry_at)
        else:
            ctx.complete(s)
    log.info(
        "delivery attempt",
        extra={
            "action": "delivery.attempt",
            "delivery_id": plan.delivery_id,
            "endpoint_id": plan.endpoint_id,
            "attempt": number,
            "status_code": result.status_code,
            "error_kind": result.error_kind,
            "duration_ms": result.duration_ms,
            "outcome": "succeeded" if result.ok else decision.reason,
        },
    )


def _busy(ctx: JobContext) -> None:
    delay = BUSY_DELAY * random.uniform(0.75, 1.5)
    with _write(ctx.rt) as s:
        ctx.reschedule(s, ctx.rt.clock.now() + delay, postpone=True)


@handler(JOB_KIND)
async def deliver(ctx: JobContext) -> None:
    """Send one delivery (the job's key is the delivery id)."""
    plan = await asyncio.to_thread(_prepare, ctx)
    if plan is None:
        return
    interrupted = min(max(ctx.job.attempts - 1, 0), MAX_INTERRUPTED)
    state = _state()
    slot = state.slots.get(plan.endpoint_id)
    if slot is None:
        slot = state.slots[plan.endpoint_id] = asyncio.Semaphore(ENDPOINT_CONCURRENCY)
    try:
        await asyncio.wait_for(slot.acquire(), BUSY_WAIT)
    except TimeoutError:
        await asyncio.to_thread(_busy, ctx)
        return
    try:
        timestamp = int(ctx.rt.clock.now().timestamp())
        headers = _headers(plan.message_id, timestamp, plan.body, plan.secrets, plan.api_key)
        result = await send(client_for(ctx.rt), plan.url, plan.body, headers)
    finally:
        slot.release()
    await asyncio.to_thread(_record, ctx, plan, result, timestamp, interrupted)


async def send_test(rt: Runtime, caller: Caller, endpoint_id: str) -> dict[str, Any]:
    """``POST /v1/endpoints/{id}/test``: one signed ``endpoint.test`` message through the same
    guarded client; the answer says status and timing only, never what the target sent."""

    def load() -> tuple[str, str | None, list[str]]:
        with rt.db.read() as s:
            ep = get_endpoint(s, caller, endpoint_id)
            key = rt.box.decrypt(ep.api_key) if ep.api_key else None
            return ep.url, key, active_secrets(rt.box, ep, rt.clock.now())

    url, api_key, secrets = await asyncio.to_thread(load)
    now = rt.clock.now()
    msg_id = ids.new_id("message")
    body = message_body(
        {
            "type": "endpoint.test",
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": {"endpoint_id": endpoint_id, "test": True},
        }
    )
    timestamp = int(now.timestamp())
    result = await send(
        client_for(rt), url, body, _headers(msg_id, timestamp, body, secrets, api_key)
    )
    return {
        "object": "endpoint_test",
        "endpoint_id": endpoint_id,
        "webhook_id": msg_id,
        "ok": result.ok,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "error_kind": result.error_kind,
    }
