"""Several orders' events applied in one processing transaction (``storage.batch``): reads
made once for all of them, writes held and sent together, and the same outcome as one event at
a time, including several events of one order in one batch; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event, func, select
from tests.support.api import Merchant, create_order, flow, new_merchant, order_meta, post_event
from tests.support.deliveries import register

from caisse.delivery.outbox import JOB_KIND
from caisse.intake import processing
from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import batch, inbound
from caisse.storage import models as m


@pytest.fixture
def merchant(client: Any, rt: Runtime) -> Merchant:
    return new_merchant(client, rt)


@pytest.fixture
def endpoints(client: Any, merchant: Merchant) -> dict[str, str]:
    """Two test endpoints (one for refunds only) and a live one: their ids by role."""
    made = {
        "all": register(client, merchant, "https://all.example/hook"),
        "refunds": register(
            client, merchant, "https://refunds.example/hook", event_types=["order.refunded"]
        ),
        "live": register(client, merchant, "https://live.example/hook", env="live"),
    }
    return {role: endpoint["id"] for role, endpoint in made.items()}


def events_of(client: Any, merchant: Merchant, name: str) -> tuple[str, list[dict[str, Any]]]:
    """A new order and its scenario, with event ids of its own."""
    return flow(client, merchant, name, seed=secrets.token_hex(4))


def stored_and_claimed(
    client: Any, rt: Runtime, merchant: Merchant, events: list[dict[str, Any]]
) -> list[str]:
    for ev in events:
        assert post_event(client, merchant, ev).status_code == 200
    with rt.db.write() as s:
        claimed = inbound.claim(s, "w1", now=rt.clock.now(), limit=100)
    assert len(claimed) == len(events)
    return claimed


def process(rt: Runtime, claimed: list[str]) -> tuple[list[Any], int, int]:
    """One ``process_batch``; ``(dispatched jobs, statements, commits)``."""
    statements: list[str] = []
    commits: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def committed(conn: Any) -> None:
        commits.append(1)

    event.listen(rt.db.engine, "before_cursor_execute", count)
    event.listen(rt.db.engine, "commit", committed)
    try:
        taken = processing.process_batch(
            rt.db, rt.clock, claimed, "w1", lambda n: 1.0, dispatch=(JOB_KIND,)
        )
    finally:
        event.remove(rt.db.engine, "before_cursor_execute", count)
        event.remove(rt.db.engine, "commit", committed)
    return taken, len(statements), len(commits)


def test_orders_in_one_batch_end_as_one_event_at_a_time_would(
    client, rt, merchant, endpoints
) -> None:  # type: ignore[no-untyped-def]
    """Three orders, nine events in one transaction, two orders with several events each (a
    second event of an order reads what the first wrote but has not sent on its own)."""
    flows = [
        events_of(client, merchant, "async_processing_success"),
        events_of(client, merchant, "payment_failed_then_success"),
        events_of(client, merchant, "card_payment_succeeded"),
    ]
    events = [ev for _, evs in flows for ev in evs]
    claimed = stored_and_claimed(client, rt, merchant, events)
    taken, _, commits = process(rt, claimed)
    assert commits == 1
    order_ids = [order_id for order_id, _ in flows]
    with rt.db.read() as s:
        statuses = dict(s.execute(select(m.Order.id, m.Order.status)).tuples().all())
        payments = Counter(s.scalars(select(m.Payment.order_id)).all())
        paid_messages = Counter(
            s.scalars(select(m.Message.order_id).where(m.Message.type == "order.paid")).all()
        )
        deliveries = s.execute(select(m.Delivery.endpoint_id, m.Delivery.message_id)).all()
        message_ids = s.scalars(select(m.Message.id)).all()
        timeline = Counter(
            s.scalars(
                select(m.OrderEvent.order_id).where(
                    m.OrderEvent.type.in_(["event.applied", "event.no_change"])
                )
            ).all()
        )
        events_left = s.scalar(
            select(func.count())
            .select_from(m.InboundEvent)
            .where(m.InboundEvent.status != "processed")
        )
        deliver_jobs = s.scalars(select(m.Job.id).where(m.Job.kind == JOB_KIND)).all()
        invoice_jobs = s.scalar(
            select(func.count()).select_from(m.Job).where(m.Job.kind == "issue_invoice")
        )
    assert {statuses[o] for o in order_ids} == {"paid"}
    assert payments == dict.fromkeys(order_ids, 1)  # one row each, however many events
    assert paid_messages == dict.fromkeys(order_ids, 1)
    assert events_left == 0
    # Every event is on its order's timeline.
    per_order = Counter(order_id for order_id, evs in flows for _ in evs)
    assert timeline == per_order
    # Each message (three order.paid, one order.payment_failed) reaches the catch-all test
    # endpoint, once: not the refunds-only one, not the live one.
    assert len(message_ids) == 4
    catch_all = endpoints["all"]
    assert sorted(deliveries) == sorted((catch_all, message_id) for message_id in message_ids)
    # The deliver jobs went in claimed by this worker, and come back to it.
    assert sorted(job.id for job in taken) == sorted(deliver_jobs)
    assert all(job.kind == JOB_KIND and job.attempts == 1 for job in taken)
    assert invoice_jobs == 3


def test_a_batch_reads_and_writes_in_statements_that_do_not_grow_with_its_events(  # type: ignore[no-untyped-def]
    client, rt, merchant, endpoints
) -> None:
    """Five paid orders or ten in one transaction: the same number of statements (each read
    and each kind of write once for all), where one at a time took fifteen per event."""
    counts = []
    for n in (5, 10):
        flows = [events_of(client, merchant, "card_payment_succeeded") for _ in range(n)]
        paid = [next(e for e in evs if e["type"] == "payment_intent.succeeded") for _, evs in flows]
        claimed = stored_and_claimed(client, rt, merchant, paid)
        taken, statements, _ = process(rt, claimed)
        assert len(taken) == n
        counts.append(statements)
    assert counts[0] == counts[1]
    assert counts[1] <= 20  # one at a time: 15 per paid event, 151 for ten


def test_held_writes_go_out_at_the_end_and_only_if_the_block_ends_well(rt) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"kind": "k", "key": f"{n}", "payload": {}, "status": "queued", "attempts": 0,
         "max_attempts": 1, "run_at": now, "created_at": now, "updated_at": now}
        for n in range(3)
    ]  # fmt: skip
    insert = m.Job.__table__.insert()

    def jobs() -> int:
        with rt.db.read() as s:
            return int(s.scalar(select(func.count()).select_from(m.Job)) or 0)

    sent: list[int] = []
    with rt.db.write() as s:
        with batch.held(s):
            batch.defer(s, insert, rows[:1], then=lambda result, held: sent.append(len(held)))
            batch.defer(s, insert, rows[1:], then=lambda result, held: sent.append(len(held)))
            assert sent == []  # nothing sent yet
            assert s.scalar(select(func.count()).select_from(m.Job)) == 0
        assert sent == [3]  # one execution for all three
    assert jobs() == 3

    def failing() -> None:
        with rt.db.write() as s, batch.held(s):
            batch.defer(s, insert, [{**rows[0], "key": "x"}])
            raise RuntimeError("the block fails")

    with pytest.raises(RuntimeError):
        failing()
    assert jobs() == 3


def test_an_event_found_by_a_payment_an_earlier_event_of_its_batch_recorded(  # type: ignore[no-untyped-def]
    client, rt, merchant
) -> None:
    """The second event names only a PaymentIntent that is not the order's own, and that only
    the first event (same batch) recorded: it must find the order through that record, held
    but not yet sent, rather than end ``unmatched``."""
    order = create_order(client, merchant, amount=2000)
    other_pi = "pi_" + "9" * 24
    first = simulate.build_event(
        "payment_intent.succeeded",
        livemode=False,
        payment_intent_id=other_pi,
        amount=2000,
        metadata=order_meta(merchant, order),
    )
    second = simulate.build_event(
        "charge.succeeded", livemode=False, payment_intent_id=other_pi, amount=2000, metadata={}
    )
    claimed = stored_and_claimed(client, rt, merchant, [first, second])
    process(rt, claimed)
    with rt.db.read() as s:
        rows = s.execute(
            select(m.InboundEvent.provider_event_id, m.InboundEvent.status, m.InboundEvent.order_id)
        ).all()
    assert {r[0]: (r[1], r[2]) for r in rows} == {
        first["id"]: ("processed", order["id"]),
        second["id"]: ("processed", order["id"]),
    }
