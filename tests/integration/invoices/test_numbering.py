"""Gapless numbering under crashes and concurrent workers, on the real engines."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import make_settings
from tests.support.api import drain

from caisse import ids
from caisse.invoices import numbering, services
from caisse.invoices.sink import ISSUE_INVOICE
from caisse.jobs.worker import Worker
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m
from caisse.tenants.services import create_tenant

# What a live invoice needs from a French seller (SIRET, and a VAT number for rated lines).
SELLER = {
    "legal_name": "Hôtel SAS",
    "country": "FR",
    "registration_number": "12345678900012",
    "vat_number": "FR12345678901",
}


def paid_orders(rt: Runtime, count: int, env: str = "test") -> tuple[str, list[str]]:
    """A tenant and ``count`` paid orders, each with its issue_invoice job queued."""
    now = rt.clock.now()
    with rt.db.write() as s:
        tenant, _ = create_tenant(s, rt.clock, "Hôtel", SELLER)
        order_ids = []
        for i in range(count):
            order_id = ids.new_id("order")
            s.add(
                m.Order(
                    id=order_id,
                    tenant_id=tenant.id,
                    environment=env,
                    reference=f"R{i}",
                    status="paid",
                    phase="paid",
                    currency="eur",
                    amount_total=1000 + i,
                    amount_paid=1000 + i,
                    customer={"name": "Buyer"},
                    lines={
                        "data": [
                            {
                                "description": "Item",
                                "quantity": 1,
                                "unit_amount": 1000 + i,
                                "tax_rate": "20",
                            }
                        ]
                    },
                    paid_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
            s.flush()
            jobstore.enqueue(s, ISSUE_INVOICE, order_id, {"order_id": order_id}, now=now)
            order_ids.append(order_id)
    return tenant.id, order_ids


def invoices(rt: Runtime) -> list[Any]:
    with rt.db.read() as s:
        return list(
            s.execute(
                select(
                    m.Invoice.number, m.Invoice.sequence, m.Invoice.order_id, m.Invoice.pdf_sha256
                ).order_by(m.Invoice.sequence)
            ).all()
        )


def test_a_crash_while_numbering_rolls_the_number_back(rt):
    tenant_id, (_order_id,) = paid_orders(rt, 1)
    year = rt.clock.now().year

    def killed_after_numbering() -> None:
        with rt.db.write() as s:
            numbering.take_next(s, tenant_id=tenant_id, environment="test", year=year)
            raise RuntimeError("worker killed before the invoice row was written")

    with pytest.raises(RuntimeError):
        killed_after_numbering()
    drain(rt)
    assert [(r.number, r.sequence) for r in invoices(rt)] == [(f"TEST-{year}-000001", 1)]


def test_a_crash_between_numbering_and_rendering_leaves_no_gap_and_no_duplicate(rt):
    __, (first, second) = paid_orders(rt, 2)
    year = rt.clock.now().year
    # Step 1 committed (number + snapshot), then the worker dies before the PDF is stored.
    with rt.db.write() as s:
        numbered = services.open_invoice(s, first, now=rt.clock.now())
    assert numbered is not None
    assert numbered.pdf_sha256 is None
    drain(rt)  # the job runs again (here: for the first time) and renders that same row
    rows = invoices(rt)
    assert [(r.number, r.order_id) for r in rows] == [
        (f"TEST-{year}-000001", first),
        (f"TEST-{year}-000002", second),
    ]
    assert all(r.pdf_sha256 for r in rows)
    # Running the job again changes nothing: no second number, the same stored PDF.
    with rt.db.write() as s:
        jobstore.requeue(s, ISSUE_INVOICE, first, {"order_id": first}, now=rt.clock.now())
    drain(rt)
    assert invoices(rt) == rows


def test_live_and_test_have_separate_series(rt):
    paid_orders(rt, 1, env="live")
    paid_orders(rt, 1, env="test")
    drain(rt)
    year = rt.clock.now().year
    assert sorted(r.number for r in invoices(rt)) == [f"F{year}-000001", f"TEST-{year}-000001"]


def test_two_workers_issue_200_invoices_with_distinct_gapless_numbers(tmp_path, pg_url):
    runtimes = [Runtime.build(make_settings(tmp_path, pg_url)) for _ in range(2)]
    try:
        tenant_id, order_ids = paid_orders(runtimes[0], 200)
        errors: list[BaseException] = []

        def work(rt: Runtime, name: str) -> None:
            try:
                asyncio.run(Worker(rt, worker_id=name, batch=10).drain())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=work, args=(rt, f"w{i}")) for i, rt in enumerate(runtimes)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        rows = invoices(runtimes[0])
        assert len(rows) == 200
        assert [r.sequence for r in rows] == list(range(1, 201))
        assert len({r.number for r in rows}) == 200
        assert {r.order_id for r in rows} == set(order_ids)
        assert all(r.pdf_sha256 for r in rows)
        with runtimes[0].db.read() as s:
            workers = set(s.scalars(select(m.Job.locked_by)).all())
            sequence = s.get(
                m.InvoiceSequence, (tenant_id, "test", "TEST", dt.datetime.now(dt.UTC).year)
            )
        assert sequence is not None
        assert sequence.last_value == 200
        assert workers == {"w0", "w1"}  # both workers took part
    finally:
        for rt in runtimes:
            rt.close()


def test_the_issue_date_is_the_sellers_and_read_after_the_number(rt):
    """A French seller's invoice at 23:30 UTC on 31 December is dated 1 January in Paris and
    takes the new year's first number; the date comes from the clock read after numbering."""
    from caisse.clock import FrozenClock
    from caisse.errors import Conflict

    _, (first, second) = paid_orders(rt, 2, env="live")
    new_year_eve = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)
    with rt.db.write() as s:
        row = services.open_invoice(s, first, now=new_year_eve, clock=FrozenClock(new_year_eve))
        assert row is not None
        assert (row.number, row.issue_date) == ("F2027-000001", dt.date(2027, 1, 1))
    # The year turns in Paris while the job waits for the sequence: nothing is numbered.
    before = dt.datetime(2026, 12, 31, 22, 59, 59, tzinfo=dt.UTC)
    after = FrozenClock(dt.datetime(2026, 12, 31, 23, 0, 1, tzinfo=dt.UTC))
    with pytest.raises(Conflict), rt.db.write() as s:
        services.open_invoice(s, second, now=before, clock=after)
    with rt.db.read() as s:
        sequences = {(q.year, q.last_value) for q in s.scalars(select(m.InvoiceSequence))}
    assert sequences == {(2027, 1)}


def test_a_seller_outside_the_known_zones_dates_in_utc(rt):
    from caisse.invoices.snapshot import local_date

    late = dt.datetime(2026, 6, 30, 23, 30, tzinfo=dt.UTC)
    assert local_date(late, "US") == dt.date(2026, 6, 30)
    assert local_date(late, "FR") == dt.date(2026, 7, 1)
    assert local_date(late.replace(tzinfo=None), "FR") == dt.date(2026, 7, 1)  # SQLite: naive UTC
