"""Invoices issued per second on one core: number + snapshot, render, store (SQLite file).

Each invoice goes through the production path (``caisse.invoices.services``): the numbering
transaction, the PDF (Factur-X PDF/A-3 for live, TEST-marked for test), then the storing
transaction that also queues the e-mail and records ``invoice.issued``. ``render_only`` times
``render_pdf`` alone for comparison. Figures are CPU time of this process, pinned to one core,
so that other load on a shared machine does not count.

Run: ``.venv/bin/python bench/invoices.py [N]`` (default N=200 typical 3-line invoices), or
call ``main()`` (returns the figures as a dict) from ``bench/run.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from caisse import ids
from caisse.clock import SystemClock
from caisse.invoices import services
from caisse.invoices.document import InvoiceDocument, InvoiceLine, Party
from caisse.invoices.render import render_pdf
from caisse.storage import models as m
from caisse.storage.db import Database
from caisse.storage.migrate import upgrade
from caisse.tenants.services import create_tenant

SELLER = Party(
    "Appart Compta SAS",
    ("12 rue de la Paix",),
    "75002",
    "Paris",
    "FR",
    vat_number="FR40123456789",
    registration_number="123456789",
)
BUYER = Party("Jeanne Dupont", ("3 avenue Foch",), "69006", "Lyon", "FR", email="j@example.org")
LEGAL = {
    "legal_name": "Appart Compta SAS",
    "address_line1": "12 rue de la Paix",
    "postcode": "75002",
    "city": "Paris",
    "country": "FR",
    "vat_number": "FR40123456789",
    "registration_number": "123456789",
    "invoice_footer": "Appart Compta SAS au capital de 10 000 € — RCS Paris 123 456 789",
}


def lines(i: int) -> list[dict[str, Any]]:
    return [
        {"description": "Nuitée chambre double", "quantity": 2, "unit_amount": 11_000 + i,
         "tax_rate": "10"},
        {"description": "Petit-déjeuner", "quantity": 2, "unit_amount": 1_200, "tax_rate": "5.5"},
        {"description": "Frais de service", "quantity": 1, "unit_amount": 2_400, "tax_rate": "20"},
    ]  # fmt: skip


def document(i: int) -> InvoiceDocument:
    return InvoiceDocument(
        kind="invoice",
        number=f"F2026-{i:06d}",
        issue_date=dt.date(2026, 1, 31),
        currency="eur",
        seller=SELLER,
        buyer=BUYER,
        lines=tuple(
            InvoiceLine(li["description"], li["quantity"], li["unit_amount"],
                        Decimal(li["tax_rate"]))
            for li in lines(i)
        ),
        payment_date=dt.date(2026, 1, 30),
        payment_method="card",
        order_reference=f"ord_{i}",
        footer=LEGAL["invoice_footer"],
    )  # fmt: skip


def _orders(db: Database, count: int, environment: str) -> list[str]:
    clock = SystemClock()
    now = clock.now()
    with db.write() as s:
        tenant, _ = create_tenant(s, clock, "Bench", LEGAL)
        order_ids = []
        for i in range(count):
            order_id = ids.new_id("order")
            amount = sum(li["quantity"] * li["unit_amount"] for li in lines(i))
            s.add(
                m.Order(
                    id=order_id, tenant_id=tenant.id, environment=environment,
                    reference=f"RES-{i}", status="paid", phase="paid", currency="eur",
                    amount_total=amount, amount_paid=amount,
                    customer={"name": "Jeanne Dupont", "email": "j@example.org",
                              "address": {"line1": "3 avenue Foch", "postal_code": "69006",
                                          "city": "Lyon", "country": "FR"}},
                    lines={"data": lines(i)}, paid_at=now, created_at=now, updated_at=now,
                )
            )  # fmt: skip
            order_ids.append(order_id)
    return order_ids


def _issue(db: Database, order_id: str) -> int:
    now = SystemClock().now()
    with db.write() as s:
        row = services.open_invoice(s, order_id, now=now)
    assert row is not None
    pdf = services.render(row)
    with db.write() as s:
        services.store_pdf(s, row.id, pdf, now=now)
    return len(pdf)


def _issue_rate(db: Database, count: int, environment: str) -> dict[str, float]:
    order_ids = _orders(db, count + 1, environment)
    _issue(db, order_ids.pop())  # warm-up: font parsing, XSD load
    start = time.process_time()
    size = sum(_issue(db, order_id) for order_id in order_ids)
    elapsed = time.process_time() - start
    return {"per_second": round(count / elapsed, 1), "avg_kib": round(size / count / 1024, 1)}


def main(count: int = 200) -> dict[str, Any]:
    """Issue ``count`` live and ``count`` test invoices; return the rates."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    docs = [document(i) for i in range(count)]
    render_pdf(docs[0])
    start = time.process_time()
    for doc in docs:
        render_pdf(doc)
    render_only = count / (time.process_time() - start)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        db = Database(url)
        try:
            live = _issue_rate(db, count, "live")
            test = _issue_rate(db, count, "test")
        finally:
            db.dispose()
    return {
        "invoices": count,
        "render_only_per_second": round(render_only, 1),
        "issued_live_per_second": live["per_second"],
        "issued_test_per_second": test["per_second"],
        "live_pdf_avg_kib": live["avg_kib"],
        "test_pdf_avg_kib": test["avg_kib"],
    }


if __name__ == "__main__":
    result = main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print(
        f"invoices: {result['issued_live_per_second']} live / "
        f"{result['issued_test_per_second']} test invoices issued/s on one core "
        f"(number + render + store, SQLite, N={result['invoices']}, 3 lines; "
        f"render_pdf alone {result['render_only_per_second']}/s; "
        f"PDF {result['live_pdf_avg_kib']} KiB live, {result['test_pdf_avg_kib']} KiB test)"
    )
