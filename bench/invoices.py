"""Invoices issued per second on one core: number + snapshot, render, store; SQLite and PostgreSQL.

Each invoice goes through the production path (``caisse.invoices.services``): the numbering
transaction, the PDF (Factur-X PDF/A-3 with its XSD-checked XML for live, TEST-marked for
test), then the storing transaction that also queues the e-mail and records
``invoice.issued``. ``render_only`` times ``render_pdf`` alone for comparison.

Figures are **CPU time** (``time.process_time``) of this process, pinned to one core, so that
other load on a shared machine counts as little as possible: ``per_second`` is invoices over the
whole run's CPU time, ``cpu_ms`` its inverse, and ``best_batch_per_second`` the rate of the
least disturbed batch of 25 (what an idle core does). On PostgreSQL the server's own CPU time
for our connections is measured too (from /proc, same machine) and ``with_server_per_second``
counts both, i.e. the rate if client and server shared one core. ``wall_per_second`` is wall
clock, for reference.

Run: ``.venv/bin/python bench/invoices.py [N] [sqlite|postgresql ...]`` (default N=200 typical
3-line invoices, both engines; PostgreSQL at ``CAISSE_TEST_PG``), or call ``main()`` (returns
the figures as a dict) from ``bench/run.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
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

PG = os.environ.get("CAISSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
BATCH = 25

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


@contextlib.contextmanager
def database(engine: str, tmp: Path) -> Iterator[tuple[str, str | None]]:
    """A fresh migrated database: ``(url, PostgreSQL database name or None)``."""
    if engine == "sqlite":
        url = f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:6]}.db'}"
        upgrade(url)
        yield url, None
        return
    import psycopg

    name = f"caisse_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}")
        yield f"postgresql+psycopg://{PG.split('://', 1)[1]}/{name}", name
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server_cpu(db: Database, name: str | None) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends serving database ``name``."""
    if name is None:
        return None
    from sqlalchemy import text

    with db.read() as s:
        pids = s.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": name}
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None  # server on another machine: client figures only
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _issue_rate(db: Database, count: int, environment: str, pg_name: str | None) -> dict[str, Any]:
    order_ids = _orders(db, count + 1, environment)
    _issue(db, order_ids.pop())  # warm-up: font parsing, XSD load
    batches, size = [], 0
    server_before = _server_cpu(db, pg_name)
    wall = time.perf_counter()
    for start in range(0, count, BATCH):
        cpu = time.process_time()
        size += sum(_issue(db, order_id) for order_id in order_ids[start : start + BATCH])
        batches.append((len(order_ids[start : start + BATCH]), time.process_time() - cpu))
    wall = time.perf_counter() - wall
    server_after = _server_cpu(db, pg_name)
    elapsed = sum(seconds for _, seconds in batches)
    result: dict[str, Any] = {
        "per_second": round(count / elapsed, 1),
        "cpu_ms": round(elapsed / count * 1000, 2),
        "best_batch_per_second": round(max(n / seconds for n, seconds in batches), 1),
        "wall_per_second": round(count / wall, 1),
        "avg_kib": round(size / count / 1024, 1),
    }
    if server_before is not None and server_after is not None:
        server = server_after - server_before
        result["server_cpu_ms"] = round(server / count * 1000, 2)
        result["with_server_per_second"] = round(count / (elapsed + server), 1)
    return result


def main(count: int = 200, engines: tuple[str, ...] = ("sqlite", "postgresql")) -> dict[str, Any]:
    """Issue ``count`` live and ``count`` test invoices per engine; return the rates."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    docs = [document(i) for i in range(count)]
    render_pdf(docs[0])
    start = time.process_time()
    for doc in docs:
        render_pdf(doc)
    render_only = count / (time.process_time() - start)
    result: dict[str, Any] = {"invoices": count, "render_only_per_second": round(render_only, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in engines:
            try:
                with database(engine, Path(tmp)) as (url, pg_name):
                    db = Database(url)
                    try:
                        result[engine] = {
                            env: _issue_rate(db, count, env, pg_name) for env in ("live", "test")
                        }
                    finally:
                        db.dispose()
            except Exception as exc:  # e.g. no PostgreSQL server: report, go on
                if engine == "sqlite":
                    raise
                result[engine] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 200
    figures = main(n, tuple(args) or ("sqlite", "postgresql"))
    print(
        f"invoices: N={figures['invoices']} typical 3-line invoices, one core; "
        f"render_pdf alone {figures['render_only_per_second']}/s"
    )
    for engine in ("sqlite", "postgresql"):
        if engine not in figures:
            continue
        if "error" in figures[engine]:
            print(f"  {engine}: {figures[engine]['error']}")
            continue
        for env, r in figures[engine].items():
            server = (
                f", server {r['server_cpu_ms']} ms -> {r['with_server_per_second']}/s with server"
                if "server_cpu_ms" in r
                else ""
            )
            print(
                f"  {engine} {env}: {r['per_second']} issued/s ({r['cpu_ms']} ms CPU each; "
                f"best batch {r['best_batch_per_second']}/s; wall {r['wall_per_second']}/s"
                f"{server}; PDF {r['avg_kib']} KiB)"
            )
