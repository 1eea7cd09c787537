"""The ``deliver`` job: send one message to one endpoint, record the attempt, plan the next.

Policy:

- one shared guarded HTTP client per process (per event loop), built lazily from
  ``CAISSE_ALLOW_PRIVATE_TARGETS``; every connection is checked at connect time;
- each attempt is signed afresh (Standard Webhooks, every active secret, newest first) with
  the message id as ``webhook-id``, plus ``X-API-KEY`` when registered and
  ``User-Agent: caisse/<version>``;
- the attempt row, the delivery's new state, the endpoint's health and the job's next run are
  written in ONE transaction, so the log and the schedule never disagree; attempts finishing
  while a transaction commits share the next one (``jobs.batching``), so a busy worker pays one
  commit per batch, not per delivery, and an idle one adds no wait;
- the retry policy, the total deadline and the per-endpoint cap come from
  ``rt.delivery`` (:class:`caisse.delivery.options.DeliveryOptions`), so tests pin them;
- at most ``endpoint_concurrency`` (4) sends per endpoint *per worker process*: a job whose
  endpoint is saturated waits ``busy_wait`` at most, then is put back ``busy_delay`` later
  without using an attempt, so a dead partner holds a handful of slots, never the worker;
- a run that finds its job claimed before without an outcome (the worker was killed, or the
  handler failed after sending) logs an ``interrupted`` attempt first: the partner may have
  received it, so at-least-once delivery shows in the log as such.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caisse import __version__, ids
from caisse.delivery import safety, signing
from caisse.delivery.endpoints import active_secrets, disable, get_endpoint
from caisse.delivery.http import PartnerClient, SendResult, build_client, send
from caisse.delivery.outbox import JOB_KIND
from caisse.delivery.retry import endpoint_should_disable
from caisse.delivery.safety import Resolver
from caisse.jobs.batching import Coalescer
from caisse.jobs.registry import JobContext, handler, on_shutdown
from caisse.runtime import Runtime
from caisse.storage import deliveries
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.tenants.services import Caller

__all__ = [
    "USER_AGENT",
    "close_clients",
    "deliver",
    "message_body",
    "send_test",
    "set_resolver",
]

log = logging.getLogger("caisse.delivery")
T = TypeVar("T")
R = TypeVar("R")

USER_AGENT = f"caisse/{__version__}"
MAX_INTERRUPTED = 5
_INTERRUPTED = "the worker stopped during this attempt; the partner may have received it"


@dataclass
class _LoopState:
    clients: dict[bool, PartnerClient] = field(default_factory=dict)
    slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    coalescers: dict[Callable[..., Any], Coalescer[Any, Any]] = field(default_factory=dict)

    def coalescer(self, fn: Callable[[list[T]], Sequence[R]]) -> Coalescer[T, R]:
        """This loop's group-commit queue for ``fn``."""
        found = self.coalescers.get(fn)
        if found is None:
            found = self.coalescers[fn] = Coalescer(fn)
        return found


_STATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
    weakref.WeakKeyDictionary()
)


def set_resolver(resolver: Resolver | None) -> None:
    """Use another DNS resolver for registration checks and new clients (tests play DNS
    rebinding with it)."""
    safety.configure_resolver(resolver)
    _STATES.clear()


def _state() -> _LoopState:
    loop = asyncio.get_running_loop()
    state = _STATES.get(loop)
    if state is None:
        state = _STATES[loop] = _LoopState()
    return state


def client_for(rt: Runtime) -> PartnerClient:
    """The process's shared guarded client (one per event loop and SSRF setting)."""
    state = _state()
    allow = rt.settings.allow_private_targets
    client = state.clients.get(allow)
    if client is None:
        client = state.clients[allow] = build_client(
            allow_private=allow, resolver=safety.configured_resolver(), user_agent=USER_AGENT
        )
    return client


@on_shutdown
async def close_clients() -> None:
    """Close this loop's clients (worker shutdown); the next send builds new ones."""
    state = _STATES.get(asyncio.get_running_loop())
    if state is not None:
        clients, state.clients = state.clients, {}
        for client in clients.values():
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


def _by_runtime(items: list[T]) -> list[list[T]]:
    """Split a batch by runtime (one process may hold several, e.g. in tests)."""
    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(id(_ctx_of(item).rt), []).append(item)
    return list(groups.values())


def _ctx_of(item: Any) -> JobContext:
    return item if isinstance(item, JobContext) else item.ctx


def _prepare_many(ctxs: list[JobContext]) -> list[_Plan | None]:
    """What each attempt needs, read in one query; jobs with nothing to send (delivery gone,
    delivered, or its endpoint disabled) are completed together in one transaction."""
    plans: dict[int, _Plan | None] = {}
    for group in _by_runtime(ctxs):
        rt = group[0].rt
        now = rt.clock.now()
        with rt.db.read() as s:
            found = deliveries.attempt_inputs(s.connection(), [c.job.key for c in group])
        keys: dict[str, tuple[str | None, list[str]]] = {}  # decrypt once per endpoint
        idle = []
        for ctx in group:
            row = found.get(ctx.job.key)
            if row is None or row.delivery_status != "pending" or row.endpoint_status != "enabled":
                plans[id(ctx)] = None
                idle.append(ctx)
                continue
            if row.endpoint_id not in keys:
                api_key = rt.box.decrypt(row.api_key) if row.api_key else None
                keys[row.endpoint_id] = (api_key, active_secrets(rt.box, row.secrets, now))
            api_key, secrets = keys[row.endpoint_id]
            plans[id(ctx)] = _Plan(
                delivery_id=row.delivery_id,
                endpoint_id=row.endpoint_id,
                url=row.url,
                api_key=api_key,
                secrets=secrets,
                message_id=row.message_id,
                body=message_body(row.payload),
            )
        if idle:
            with rt.db.write() as s:
                for ctx in idle:
                    gone = s.get(m.Delivery, ctx.job.key, with_for_update=True)
                    if gone is not None and gone.status == "pending":  # endpoint disabled
                        gone.status, gone.next_attempt_at, gone.updated_at = "failed", None, now
                        gone.last_error = "endpoint disabled"
                    ctx.complete(s)
    return [plans[id(ctx)] for ctx in ctxs]


def _describe(result: SendResult) -> str:
    if result.error_kind:
        return f"{result.error_kind}: {result.error or ''}".strip(": ")[:500]
    return f"HTTP {result.status_code}"


@dataclass(frozen=True, slots=True)
class _Outcome:
    ctx: JobContext
    plan: _Plan
    result: SendResult
    timestamp: int
    interrupted: int


def _record_many(outcomes: list[_Outcome]) -> list[None]:
    """Attempt rows + delivery states + endpoint health + next runs of a whole batch: one
    transaction."""
    for group in _by_runtime(outcomes):
        rt = group[0].ctx.rt
        now = rt.clock.now()
        logged: list[tuple[_Outcome, int, str]] = []
        with rt.db.write() as s:
            conn = s.connection()
            endpoints, states = deliveries.lock_for_outcomes(
                conn, {o.plan.endpoint_id for o in group}, {o.plan.delivery_id for o in group}
            )
            failing = {ep.id: ep.failing_since for ep in endpoints.values()}
            attempts: list[dict[str, Any]] = []
            changed: list[deliveries.DeliveryState] = []
            done: list[JobContext] = []
            again: list[tuple[JobContext, dt.datetime]] = []
            for o in group:
                d = states.get(o.plan.delivery_id)
                if d is None:  # endpoint deleted meanwhile
                    done.append(o.ctx)
                    continue
                number, outcome = _apply(s, o, d, endpoints.get(d.endpoint_id), now, attempts)
                changed.append(d)
                if d.status == "pending":
                    assert d.next_attempt_at is not None
                    again.append((o.ctx, d.next_attempt_at))
                else:
                    done.append(o.ctx)
                logged.append((o, number, outcome))
            health = [ep for ep in endpoints.values() if ep.failing_since != failing[ep.id]]
            deliveries.save_outcomes(conn, changed, health, attempts)
            _end_jobs(s, rt, done, again)
        for o, number, outcome in logged:
            log.info(
                "delivery attempt",
                extra={
                    "action": "delivery.attempt",
                    "delivery_id": o.plan.delivery_id,
                    "endpoint_id": o.plan.endpoint_id,
                    "attempt": number,
                    "status_code": o.result.status_code,
                    "error_kind": o.result.error_kind,
                    "duration_ms": o.result.duration_ms,
                    "outcome": outcome,
                },
            )
    return [None] * len(outcomes)


def _end_jobs(
    s: Session, rt: Runtime, done: list[JobContext], again: list[tuple[JobContext, dt.datetime]]
) -> None:
    """Complete or reschedule the batch's jobs in two statements (per worker id)."""
    now = rt.clock.now()
    for worker_id in {c.worker_id for c in done} | {c.worker_id for c, _ in again}:
        jobstore.complete_many(
            s, [c.job.id for c in done if c.worker_id == worker_id], worker_id, now=now
        )
        jobstore.reschedule_many(
            s, [(c.job.id, at) for c, at in again if c.worker_id == worker_id], worker_id, now=now
        )
    for ctx in [*done, *(c for c, _ in again)]:
        ctx.completed_elsewhere()


def _apply(
    s: Session,
    o: _Outcome,
    d: deliveries.DeliveryState,
    ep: deliveries.EndpointHealth | None,
    now: dt.datetime,
    attempts: list[dict[str, Any]],
) -> tuple[int, str]:
    """One outcome onto its delivery and endpoint (loaded, locked); its attempt rows appended."""
    plan, result = o.plan, o.result
    trigger = str(o.ctx.payload.get("trigger", "schedule"))
    common = {
        "delivery_id": d.id,
        "endpoint_id": d.endpoint_id,
        "trigger": trigger,
        "attempted_at": now,
        "url": plan.url,
        "webhook_id": plan.message_id,
    }
    number = d.attempts
    for _ in range(o.interrupted):
        number += 1
        attempts.append(
            _attempt_row(
                common,
                number=number,
                webhook_timestamp=0,
                outcome="interrupted",
                duration_ms=0,
                error_kind="interrupted",
                error=_INTERRUPTED,
            )
        )
    number += 1
    decision = o.ctx.rt.delivery.policy.decide(
        number,
        status_code=result.status_code,
        error_kind=result.error_kind,
        retry_after=result.retry_after,
        now=now,
    )
    attempts.append(
        _attempt_row(
            common,
            number=number,
            webhook_timestamp=o.timestamp,
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
    disable_reason = disable_code = None
    if ep is not None and not result.ok:
        if decision.disable_endpoint:
            disable_reason, disable_code = "the partner answered 410 Gone", "gone"
        elif ep.failing_since is None:
            ep.failing_since = now
        elif endpoint_should_disable(ep.failing_since, now) and endpoint_should_disable(
            ep.failing_since, now, failures=_failures_since(s, ep.id, ep.failing_since) + 1
        ):
            disable_reason = "failing for 5 days without a single success"
            disable_code = "failing"
    elif ep is not None:
        ep.failing_since = None
    if ep is not None and disable_reason and disable_code and ep.status == "enabled":
        row = s.get_one(m.Endpoint, ep.id)
        row.failing_since = ep.failing_since
        disable(s, row, disable_reason, now=now, code=disable_code)
        ep.status = row.status
    d.attempts = number
    d.last_status_code = result.status_code
    d.updated_at = now
    if result.ok:
        d.status, d.delivered_at, d.next_attempt_at, d.last_error = "delivered", now, None, None
    elif decision.retry_at is not None and ep is not None and ep.status == "enabled":
        d.status, d.next_attempt_at, d.last_error = "pending", decision.retry_at, _describe(result)
    else:
        d.status, d.next_attempt_at = "failed", None
        d.last_error = _describe(result) + (f"; {disable_reason}" if disable_reason else "")
    return number, "succeeded" if result.ok else decision.reason


def _failures_since(s: Session, endpoint_id: str, since: dt.datetime) -> int:
    """Failed attempts logged for an endpoint since ``since`` (asked only once the 5-day
    window has passed, so not on the hot path)."""
    return int(
        s.scalar(
            select(func.count())
            .select_from(m.DeliveryAttempt)
            .where(
                m.DeliveryAttempt.endpoint_id == endpoint_id,
                m.DeliveryAttempt.outcome == "failed",
                m.DeliveryAttempt.attempted_at >= since,
            )
        )
        or 0
    )


_ATTEMPT_DEFAULTS: dict[str, Any] = {
    "status_code": None,
    "error_kind": None,
    "error": None,
    "response_body": None,
    "response_truncated": False,
    "retry_after": None,
    "location": None,
    "next_attempt_at": None,
    "decision": None,
}


def _attempt_row(common: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A full row (every column named, so one executemany takes them all)."""
    return {"id": ids.new_id("attempt"), **common, **_ATTEMPT_DEFAULTS, **values}


def _busy(ctx: JobContext) -> None:
    delay = ctx.rt.delivery.busy_delay * random.uniform(0.75, 1.5)
    with ctx.rt.db.write() as s:
        ctx.reschedule(s, ctx.rt.clock.now() + delay, postpone=True)


@handler(JOB_KIND)
async def deliver(ctx: JobContext) -> None:
    """Send one delivery (the job's key is the delivery id)."""
    state = _state()
    plan = await state.coalescer(_prepare_many).submit(ctx)
    if plan is None:
        return
    interrupted = min(max(ctx.job.attempts - 1, 0), MAX_INTERRUPTED)
    options = ctx.rt.delivery
    slot = state.slots.get(plan.endpoint_id)
    if slot is None:
        slot = state.slots[plan.endpoint_id] = asyncio.Semaphore(options.endpoint_concurrency)
    try:
        await asyncio.wait_for(slot.acquire(), options.busy_wait)
    except TimeoutError:
        await asyncio.to_thread(_busy, ctx)
        return
    try:
        timestamp = int(ctx.rt.clock.now().timestamp())
        headers = _headers(plan.message_id, timestamp, plan.body, plan.secrets, plan.api_key)
        result = await send(
            client_for(ctx.rt), plan.url, plan.body, headers, deadline=options.deadline
        )
    finally:
        slot.release()
    await state.coalescer(_record_many).submit(_Outcome(ctx, plan, result, timestamp, interrupted))


async def send_test(rt: Runtime, caller: Caller, endpoint_id: str) -> dict[str, Any]:
    """``POST /v1/endpoints/{id}/test``: one signed ``endpoint.test`` message through the same
    guarded client; the answer says status and timing only, never what the target sent."""

    def load() -> tuple[str, str | None, list[str]]:
        with rt.db.read() as s:
            ep = get_endpoint(s, caller, endpoint_id)
            key = rt.box.decrypt(ep.api_key) if ep.api_key else None
            return ep.url, key, active_secrets(rt.box, ep.secrets, rt.clock.now())

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
        client_for(rt),
        url,
        body,
        _headers(msg_id, timestamp, body, secrets, api_key),
        deadline=rt.delivery.deadline,
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
