"""The retry schedule and the per-endpoint cap, driven exactly: a FrozenClock and a pinned
jitter injected through ``Runtime.delivery``, real loopback partners that verify every
signature, both engines."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from tests.support import partners
from tests.support.api import Merchant, drain, new_merchant, wait_for
from tests.support.deliveries import deliveries, record, register

from caisse.clock import FrozenClock
from caisse.config import Settings
from caisse.delivery import http
from caisse.delivery.options import DeliveryOptions
from caisse.delivery.retry import DEFAULT_SCHEDULE, RetryPolicy
from caisse.jobs.worker import Worker
from caisse.runtime import Runtime
from caisse.storage import models as m

#: Every jittered delay at the top of its ±20 % band: exact, and visibly not the nominal one.
PINNED = RetryPolicy(uniform=lambda low, high: high)


@pytest.fixture
def rt(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime.build(settings, clock=clock)
    runtime.delivery = DeliveryOptions(policy=PINNED, deadline=1.0, busy_wait=0.2)
    yield runtime
    runtime.close()


@pytest.fixture
def merchant(client: Any, rt: Runtime) -> Merchant:
    return new_merchant(client, rt)


def test_defaults_are_the_documented_policy() -> None:
    options = Runtime.__dataclass_fields__["delivery"].default_factory()  # type: ignore[misc]
    assert options == DeliveryOptions()
    assert options.deadline == 10.0 == http.DEFAULT_DEADLINE
    assert options.endpoint_concurrency == 4
    assert options.policy.schedule == DEFAULT_SCHEDULE
    assert options.policy.jitter == 0.2
    assert options.policy.min_backoff == dt.timedelta(seconds=60)


def test_every_attempt_time_is_exact_then_failed(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    with partners.ok(status=500) as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        msg_id = record(rt, merchant)
        drain(rt)
        for number, step in enumerate(DEFAULT_SCHEDULE[1:], start=2):
            wait = step * 1.2
            [d] = deliveries(client, merchant, ep["id"])
            assert d["status"] == "pending"
            assert d["attempt_count"] == number - 1
            assert d["next_attempt"] == int((clock.now() + wait).timestamp()), number
            clock.advance(wait.total_seconds() - 1)
            assert drain(rt) == 0  # one second early: nothing is due
            clock.advance(1)
            assert drain(rt) == 1
        clock.advance(7 * 86_400)
        assert drain(rt) == 0  # given up: nothing is ever due again
        assert len(partner.requests) == len(DEFAULT_SCHEDULE)
        assert {r.header("webhook-id") for r in partner.requests} == {msg_id}
    [d] = deliveries(client, merchant, ep["id"])
    assert d["status"] == "failed"
    assert d["next_attempt"] is None
    attempts = d["attempts"]
    assert [a["number"] for a in attempts] == list(range(1, 11))
    for before, after, step in zip(attempts, attempts[1:], DEFAULT_SCHEDULE[1:], strict=False):
        assert before["next_attempt"] == after["attempted"]
        assert after["attempted"] - before["attempted"] == int((step * 1.2).total_seconds())
    assert attempts[-1]["next_attempt"] is None
    assert attempts[-1]["decision"] == "status 500: 10 attempts exhausted"
    span = attempts[-1]["attempted"] - attempts[0]["attempted"]
    assert span == int((PINNED.nominal_span * 1.2).total_seconds())  # ~3 days (90 h 42 min)
    shown = client.get(f"/v1/endpoints/{ep['id']}", headers=merchant.auth()).json()
    assert shown["status"] == "enabled"  # under 5 days: not disabled


def test_a_timeout_waits_the_minimum_backoff(
    client: Any, rt: Runtime, clock: FrozenClock, merchant: Merchant
) -> None:
    with partners.hang() as partner:
        ep = register(client, merchant, partner.url)
        partner.expect_signed_by(ep["secret"])
        record(rt, merchant)
        drain(rt)  # ends at the 1 s deadline injected above, not the default 10 s
    [d] = deliveries(client, merchant, ep["id"])
    [a] = d["attempts"]
    assert a["error_kind"] == "timeout"
    # the schedule says 5 s (6 s pinned); a timeout waits at least 60 s
    assert a["next_attempt"] - a["attempted"] == 60
    assert d["next_attempt"] == int(clock.now().timestamp()) + 60
    assert "back-off" in a["decision"]


@contextlib.contextmanager
def running_worker(rt: Runtime) -> Iterator[None]:
    """A real worker loop in its own thread (as ``caisse worker`` runs it), stopped on exit."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(Worker(rt).run(stop),), daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


def test_a_dead_partner_holds_its_cap_and_never_slows_the_others(
    client: Any, rt: Runtime, merchant: Merchant
) -> None:
    """10 messages to a hanging partner: at most ``endpoint_concurrency`` in flight; the rest
    go back to the queue without using an attempt; a healthy endpoint is served while the
    dead one holds its slots."""
    rt.delivery = DeliveryOptions(policy=PINNED, deadline=5.0, busy_wait=0.2)
    cap = rt.delivery.endpoint_concurrency
    seen_in_flight: list[int] = []
    with partners.hang() as dead:

        async def healthy_behaviour(srv: Any, req: Any, rcv: Any, snd: Any) -> None:
            seen_in_flight.append(dead.in_flight)
            await snd({"type": "http.response.start", "status": 200, "headers": []})
            await snd({"type": "http.response.body", "body": b"ok"})

        with partners.PartnerServer(healthy_behaviour) as healthy:
            ep_dead = register(client, merchant, dead.url, event_types=["order.paid"])
            ep_ok = register(client, merchant, healthy.url, event_types=["order.refunded"])
            dead.expect_signed_by(ep_dead["secret"])
            healthy.expect_signed_by(ep_ok["secret"])
            with running_worker(rt):
                for _ in range(10):
                    record(rt, merchant, "order.paid")
                wait_for(lambda: dead.in_flight == cap)
                record(rt, merchant, "order.refunded")
                wait_for(lambda: healthy.requests)
                wait_for(lambda: dead.in_flight == 0)  # the deadline ends the hanging ones
        assert dead.max_in_flight == cap
        assert len(dead.requests) == cap
    assert seen_in_flight == [cap]  # served while the dead partner held all its slots
    [ok] = deliveries(client, merchant, ep_ok["id"])
    assert ok["status"] == "delivered"
    views = deliveries(client, merchant, ep_dead["id"])
    tried = [d for d in views if d["attempt_count"]]
    put_back = [d for d in views if not d["attempt_count"]]
    assert len(tried) == cap
    assert all(d["attempts"][0]["error_kind"] == "timeout" for d in tried)
    assert len(put_back) == 10 - cap
    assert all(d["status"] == "pending" and d["attempts"] == [] for d in put_back)
    with rt.db.read() as s:
        jobs = s.scalars(select(m.Job).where(m.Job.key.in_([d["id"] for d in put_back]))).all()
    assert len(jobs) == 10 - cap
    assert all(j.status == "queued" and j.attempts == 0 for j in jobs)
