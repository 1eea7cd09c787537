"""The raw batch writer and the event lease, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest
from sqlalchemy import select
from tests.support.inbound import row

from caisse.clock import UTC
from caisse.intake import processing
from caisse.storage import inbound
from caisse.storage import models as m
from caisse.storage.inbound import InboundBatchWriter


@pytest.fixture
def tenant(rt):  # type: ignore[no-untyped-def]
    with rt.db.write() as s:
        s.add(m.Tenant(id="ten_t", name="t", legal={}, created_at=dt.datetime.now(UTC)))
    return "ten_t"


def test_batch_round_trips_through_the_orm(rt, tenant):
    when = dt.datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=UTC)
    body = json.dumps({"id": "evt_1", "object": "event", "text": "é€😀" * 50}).encode()
    InboundBatchWriter(rt.db.engine).write([row("evt_1", body, when)])
    with rt.db.read() as s:
        ev = s.execute(select(m.InboundEvent)).scalar_one()
    assert ev.raw_body == body  # exact bytes back
    assert ev.body_encoding == "zlib"  # repetitive JSON compresses
    assert ev.received_at == when
    assert ev.received_at.tzinfo is not None
    assert ev.provider_created_at == when
    assert ev.headers == {"user-agent": "Stripe/1.0"}


def test_incompressible_body_is_kept_as_is(rt, tenant):
    import os

    body = os.urandom(600)
    InboundBatchWriter(rt.db.engine).write([row("evt_r", body, dt.datetime.now(UTC))])
    with rt.db.read() as s:
        ev = s.execute(select(m.InboundEvent)).scalar_one()
    assert ev.body_encoding == "identity"
    assert ev.raw_body == body


def test_duplicates_in_and_across_batches_add_nothing(rt, tenant):
    now = dt.datetime.now(UTC)
    writer = InboundBatchWriter(rt.db.engine)
    writer.write([row("evt_a", b"{}", now), row("evt_a", b"{}", now), row("evt_b", b"{}", now)])
    writer.write([row("evt_b", b"{}", now)])
    with rt.db.read() as s:
        got = sorted(s.execute(select(m.InboundEvent.provider_event_id)).scalars())
    assert got == ["evt_a", "evt_b"]


def test_a_batch_over_one_statement_is_stored_once_in_one_transaction(rt, tenant):
    now = dt.datetime.now(UTC)
    n = inbound.CHUNK_ROWS + 7
    rows = [row(f"evt_{i}", b"{}", now) for i in range(n)]
    rows.append(row("evt_3", b"{}", now))  # a duplicate from the first statement, in the second
    InboundBatchWriter(rt.db.engine).write(rows)
    with rt.db.read() as s:
        got = list(s.execute(select(m.InboundEvent.provider_event_id)).scalars())
    assert len(got) == n
    assert len(set(got)) == n


def test_a_failing_row_rolls_the_whole_batch_back(rt, tenant):
    now = dt.datetime.now(UTC)
    rows = [row(f"evt_{i}", b"{}", now) for i in range(inbound.CHUNK_ROWS + 1)]
    rows[-1]["tenant_id"] = "ten_nobody"  # a foreign key violation (in SQLite's 2nd statement)
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        InboundBatchWriter(rt.db.engine).write(rows)
    with rt.db.read() as s:
        assert s.execute(select(m.InboundEvent.id)).first() is None


def test_times_in_any_zone_are_stored_as_utc(rt, tenant):
    paris = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=paris)  # no microseconds: still exact
    data = row("evt_tz", b"{}", dt.datetime.now(UTC))
    data["provider_created_at"] = when
    InboundBatchWriter(rt.db.engine).write([data])
    with rt.db.read() as s:
        ev = s.execute(select(m.InboundEvent)).scalar_one()
    assert ev.provider_created_at == when
    assert ev.provider_created_at.utcoffset() == dt.timedelta(0)


def test_processing_compresses_a_body_stored_as_received(rt, tenant):
    from caisse.providers.stripe import simulate

    now = dt.datetime.now(UTC)
    body = simulate.encode(simulate.build_event("payment_intent.succeeded", livemode=False))
    data = row("evt_raw", body, now)
    data["body"], data["body_encoding"] = body, "identity"  # as ingest stores it
    InboundBatchWriter(rt.db.engine).write([data])
    with rt.db.write() as s:
        (event_id,) = inbound.claim(s, "w1", now=now)
    processing.process_claimed(rt.db, rt.clock, event_id, "w1", lambda n: 1.0)
    with rt.db.read() as s:
        ev = s.get(m.InboundEvent, event_id)
    assert ev is not None
    assert ev.status == "unmatched"  # processed: no order of this tenant has that intent
    assert ev.body_encoding == "zlib"
    assert len(ev.body) < len(body)
    assert ev.raw_body == body


def test_claim_leases_and_a_lapsed_lease_is_claimed_again(rt, tenant):
    now = dt.datetime.now(UTC)
    InboundBatchWriter(rt.db.engine).write([row(f"evt_{i}", b"{}", now) for i in range(3)])
    with rt.db.write() as s:
        first = inbound.claim(s, "w1", now=now, limit=10, lease_seconds=60)
    assert len(first) == 3
    with rt.db.write() as s:
        assert inbound.claim(s, "w2", now=now, limit=10) == []  # leased
    later = now + dt.timedelta(seconds=61)
    with rt.db.write() as s:
        assert sorted(inbound.claim(s, "w2", now=later, limit=10)) == sorted(first)


def test_failed_processing_keeps_the_error_and_retries_later(rt, tenant):
    now = dt.datetime.now(UTC)
    bad = json.dumps(
        {
            "id": "evt_bad",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(now.timestamp()),
            "livemode": False,
            "data": {
                "object": {"object": "payment_intent", "id": "pi_1", "status": "no-such-status"}
            },
        }
    ).encode()
    InboundBatchWriter(rt.db.engine).write([row("evt_bad", bad, now)])
    with rt.db.write() as s:
        (event_id,) = inbound.claim(s, "w1", now=now)
    processing.process_claimed(rt.db, rt.clock, event_id, "w1", lambda n: 30.0)
    with rt.db.read() as s:
        ev = s.get(m.InboundEvent, event_id)
    assert ev is not None
    assert ev.status == "retrying"
    assert ev.attempts == 1
    assert "no-such-status" in (ev.error or "")
    assert ev.run_at > now + dt.timedelta(seconds=25)
    assert ev.locked_by is None
    with rt.db.write() as s:  # not due yet
        assert inbound.claim(s, "w1", now=now + dt.timedelta(seconds=1)) == []


def test_an_event_failing_every_time_is_parked_as_failed(rt, tenant):
    now = dt.datetime.now(UTC)
    InboundBatchWriter(rt.db.engine).write([row("evt_x", b"not json", now)])
    with rt.db.write() as s:
        s.execute(m.InboundEvent.__table__.update().values(attempts=processing.MAX_ATTEMPTS - 1))
    with rt.db.write() as s:
        (event_id,) = inbound.claim(s, "w1", now=now)
    processing.process_claimed(rt.db, rt.clock, event_id, "w1", lambda n: 1.0)
    with rt.db.read() as s:
        ev = s.get(m.InboundEvent, event_id)
    assert ev is not None
    assert ev.status == "failed"
    assert ev.error


def test_skip_locked_gives_concurrent_workers_disjoint_events(pg_url, tmp_path):
    from tests.conftest import make_settings

    from caisse.runtime import Runtime

    rt = Runtime.build(make_settings(tmp_path, pg_url))
    now = dt.datetime.now(UTC)
    with rt.db.write() as s:
        s.add(m.Tenant(id="ten_t", name="t", legal={}, created_at=now))
    InboundBatchWriter(rt.db.engine).write([row(f"evt_{i}", b"{}", now) for i in range(40)])
    barrier = threading.Barrier(2)
    got: dict[str, list[str]] = {}

    def work(name: str) -> None:
        with rt.db.write() as s:
            barrier.wait()
            got[name] = inbound.claim(s, name, now=now, limit=15)
            barrier.wait()  # hold the row locks until both have claimed

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(got["a"]) == 15
    assert len(got["b"]) == 15
    assert not set(got["a"]) & set(got["b"])
    rt.close()
