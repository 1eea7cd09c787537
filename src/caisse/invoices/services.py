"""Issuing invoices and credit notes: numbering with a snapshot, then the PDF, stored once.

Two steps, each its own transaction, so that the number lock is never held while rendering:

1. ``open_invoice`` / ``open_credit_note`` take the next number and insert the invoice row with a
   snapshot of everything it prints (seller, buyer, lines, dates), in one transaction: numbered
   and recorded together, or neither (see ``numbering``).
2. ``render`` turns the snapshot into the PDF (Factur-X PDF/A-3 in live, marked TEST in test)
   outside any transaction, and ``store_pdf`` writes it only if none is stored yet (``WHERE pdf
   IS NULL``), with its SHA-256, then queues the buyer's e-mail and records ``invoice.issued``.

A crash between the steps leaves a numbered row without PDF; the job runs again and renders that
same snapshot: no gap, no duplicate, and the stored PDF never changes once written.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from caisse import ids
from caisse.errors import Conflict
from caisse.invoices import numbering
from caisse.invoices.document import InvoiceDocument, InvoiceLine, Party
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

DEFAULT_COUNTRY = "FR"
EMAIL_MAX_ATTEMPTS = 8


class InvoiceNotReady(Conflict):
    """A credit note waits for its order's invoice (the job retries)."""

    code = "invoice_not_ready"


# -- snapshots ------------------------------------------------------------------------------


def seller_snapshot(tenant: m.Tenant) -> dict[str, Any]:
    """The seller as printed, from the tenant's legal details at the time of issue."""
    legal = tenant.legal or {}
    lines = [x for x in (legal.get("address_line1"), legal.get("address_line2")) if x]
    return {
        "legal_name": legal.get("legal_name") or tenant.name,
        "address_lines": lines,
        "postcode": legal.get("postcode") or "",
        "city": legal.get("city") or "",
        "country": legal.get("country") or DEFAULT_COUNTRY,
        "vat_number": legal.get("vat_number") or None,
        "registration_number": legal.get("registration_number") or None,
        "email": legal.get("email") or None,
    }


def buyer_snapshot(order: m.Order, fallback_country: str) -> dict[str, Any]:
    """The buyer from the order's customer (Stripe-style address keys)."""
    customer = order.customer or {}
    address = customer.get("address") or {}
    lines = [str(x) for x in (address.get("line1"), address.get("line2")) if x]
    country = str(address.get("country") or fallback_country).upper()
    if len(country) != 2 or not country.isalpha():
        country = fallback_country
    email = customer.get("email")
    return {
        "legal_name": str(customer.get("name") or email or "Client"),
        "address_lines": lines,
        "postcode": str(address.get("postal_code") or ""),
        "city": str(address.get("city") or ""),
        "country": country,
        "vat_number": customer.get("vat_number") or None,
        "registration_number": None,
        "email": str(email) if email else None,
    }


def _party(data: dict[str, Any]) -> Party:
    return Party(
        legal_name=data["legal_name"],
        address_lines=tuple(data["address_lines"]),
        postcode=data["postcode"],
        city=data["city"],
        country=data["country"],
        vat_number=data.get("vat_number"),
        registration_number=data.get("registration_number"),
        email=data.get("email"),
    )


def document_from(row: m.Invoice) -> InvoiceDocument:
    """The document an invoice row prints: built from its snapshot alone."""
    snap = row.snapshot
    return InvoiceDocument(
        kind=row.kind,  # type: ignore[arg-type]
        number=row.number,
        issue_date=row.issue_date,
        currency=row.currency,
        seller=_party(snap["seller"]),
        buyer=_party(snap["buyer"]),
        lines=tuple(
            InvoiceLine(
                li["description"],
                int(li["quantity"]),
                int(li["unit_amount"]),
                Decimal(li["tax_rate"]),
            )
            for li in snap["lines"]
        ),
        payment_date=dt.date.fromisoformat(snap["payment_date"]),
        payment_method=snap["payment_method"],
        order_reference=snap["order_reference"],
        related_invoice_number=snap.get("related_invoice_number"),
        test_mode=row.environment == "test",
        language=row.language,  # type: ignore[arg-type]
        footer=snap.get("footer"),
        vat_exemption_reason=snap.get("vat_exemption_reason"),
    )


def _order_lines(order: m.Order) -> list[dict[str, Any]]:
    return [
        {
            "description": li["description"],
            "quantity": int(li["quantity"]),
            "unit_amount": int(li["unit_amount"]),
            "tax_rate": str(li.get("tax_rate") or "0"),
        }
        for li in (order.lines or {}).get("data", [])
    ]


def _payment_method(session: Session, order_id: str) -> str:
    methods = session.scalars(
        select(m.Payment.method).where(
            m.Payment.order_id == order_id, m.Payment.method.is_not(None)
        )
    ).all()
    return str(methods[0]) if methods else "card"


# -- step 1: number and record --------------------------------------------------------------


def _insert(
    session: Session,
    *,
    order: m.Order,
    tenant: m.Tenant,
    kind: str,
    source_key: str,
    lines: list[dict[str, Any]],
    payment_date: dt.date,
    related: m.Invoice | None,
    now: dt.datetime,
) -> m.Invoice:
    legal = tenant.legal or {}
    seller = seller_snapshot(tenant)
    customer = order.customer or {}
    language = customer.get("language") or legal.get("language") or "fr"
    snapshot: dict[str, Any] = {
        "seller": seller,
        "buyer": buyer_snapshot(order, seller["country"]),
        "lines": lines,
        "payment_date": payment_date.isoformat(),
        "payment_method": _payment_method(session, order.id),
        "order_reference": order.reference or order.id,
        "related_invoice_number": related.number if related else None,
        "footer": legal.get("invoice_footer") or None,
        "vat_exemption_reason": legal.get("vat_exemption_reason") or None,
        "logo": legal.get("logo") or None,  # dropped once the PDF is stored
    }
    issue_date = now.date()
    series, value = numbering.take_next(
        session, tenant_id=order.tenant_id, environment=order.environment, year=issue_date.year
    )
    row = m.Invoice(
        id=ids.new_id("invoice"),
        tenant_id=order.tenant_id,
        environment=order.environment,
        order_id=order.id,
        kind=kind,
        source_key=source_key,
        series=series,
        year=issue_date.year,
        sequence=value,
        number=numbering.format_number(series, issue_date.year, value),
        status="numbered",
        issue_date=issue_date,
        currency=order.currency,
        amount_net=0,
        amount_tax=0,
        amount_gross=0,
        language=language,
        snapshot=snapshot,
        related_invoice_id=related.id if related else None,
        facturx=order.environment == "live",
        created_at=now,
    )
    doc = document_from(row)  # validates the snapshot before anything is committed
    totals = doc.totals
    row.amount_net, row.amount_tax, row.amount_gross = totals.net, totals.tax, totals.gross
    row.snapshot = {
        **snapshot,
        "vat": [
            {
                "rate": str(v.rate),
                "category": v.category,
                "net": v.net,
                "tax": v.tax,
                "gross": v.gross,
            }
            for v in totals.vat
        ],
    }
    session.add(row)
    session.flush()
    return row


def _by_source(session: Session, order: m.Order, source_key: str) -> m.Invoice | None:
    return session.scalars(
        select(m.Invoice).where(
            m.Invoice.tenant_id == order.tenant_id,
            m.Invoice.environment == order.environment,
            m.Invoice.source_key == source_key,
        )
    ).one_or_none()


def open_invoice(session: Session, order_id: str, *, now: dt.datetime) -> m.Invoice | None:
    """The order's invoice, numbered now if it has none; None if the order was never paid."""
    order = session.get(m.Order, order_id)
    if order is None or order.paid_at is None:
        return None
    source_key = f"invoice:{order.id}"
    existing = _by_source(session, order, source_key)
    if existing is not None:
        return existing
    tenant = session.get(m.Tenant, order.tenant_id)
    assert tenant is not None
    return _insert(
        session,
        order=order,
        tenant=tenant,
        kind="invoice",
        source_key=source_key,
        lines=_order_lines(order),
        payment_date=order.paid_at.date(),
        related=None,
        now=now,
    )


def open_credit_note(
    session: Session, order_id: str, amount_refunded: int, *, now: dt.datetime
) -> m.Invoice | None:
    """A credit note bringing the order's credited total up to ``amount_refunded``.

    Raises ``InvoiceNotReady`` while the order's invoice is not issued; None when nothing is
    left to credit (an older refund level arriving late, or already covered).
    """
    order = session.get(m.Order, order_id)
    if order is None or order.paid_at is None:
        return None
    source_key = f"credit_note:{order.id}:{amount_refunded}"
    existing = _by_source(session, order, source_key)
    if existing is not None:
        return existing
    invoice = session.scalars(
        select(m.Invoice)
        .where(m.Invoice.order_id == order.id, m.Invoice.kind == "invoice")
        .with_for_update()  # serialises the credit notes of one order
    ).one_or_none()
    if invoice is None:
        raise InvoiceNotReady(f"Order {order.id} has no invoice yet")
    credited = session.execute(
        select(func.coalesce(func.sum(m.Invoice.amount_gross), 0)).where(
            m.Invoice.order_id == order.id, m.Invoice.kind == "credit_note"
        )
    ).scalar_one()
    amount = min(amount_refunded, invoice.amount_gross) - int(credited)
    if amount <= 0:
        return None
    tenant = session.get(m.Tenant, order.tenant_id)
    assert tenant is not None
    if credited == 0 and amount == invoice.amount_gross:
        lines = list(invoice.snapshot["lines"])  # a full refund credits the invoice's lines
    else:
        lines = partial_lines(invoice, amount)
    return _insert(
        session,
        order=order,
        tenant=tenant,
        kind="credit_note",
        source_key=source_key,
        lines=lines,
        payment_date=now.date(),
        related=invoice,
        now=now,
    )


_PARTIAL = {"fr": "Remboursement partiel – commande {ref}", "en": "Partial refund – order {ref}"}


def partial_lines(invoice: m.Invoice, amount: int) -> list[dict[str, Any]]:
    """A partial refund as one line per VAT rate of the invoice, sharing ``amount`` in
    proportion to each rate's gross (largest remainders), so the VAT credited follows the VAT
    invoiced."""
    groups = [(v["rate"], int(v["gross"])) for v in invoice.snapshot.get("vat", [])]
    total = sum(gross for _, gross in groups) or 1
    shares = [amount * gross // total for _, gross in groups]
    remainders = sorted(range(len(groups)), key=lambda i: (-(amount * groups[i][1] % total), i))
    for i in remainders[: amount - sum(shares)]:
        shares[i] += 1
    label = _PARTIAL.get(invoice.language, _PARTIAL["en"]).format(
        ref=invoice.snapshot.get("order_reference", invoice.order_id)
    )
    return [
        {"description": label, "quantity": 1, "unit_amount": share, "tax_rate": rate}
        for (rate, _), share in zip(groups, shares, strict=True)
        if share > 0
    ]


# -- step 2: the PDF, once -------------------------------------------------------------------


def render(row: m.Invoice) -> bytes:
    """The PDF of a numbered row: Factur-X PDF/A-3 in live, a TEST-marked PDF in test."""
    from caisse.invoices.facturx import XMP, checked_xml
    from caisse.invoices.render import FacturXPart, render_pdf

    doc = document_from(row)
    logo = row.snapshot.get("logo")
    part = FacturXPart(checked_xml(doc), XMP) if row.facturx else None
    return render_pdf(doc, logo=base64.b64decode(logo) if logo else None, facturx=part)


def store_pdf(session: Session, invoice_id: str, pdf: bytes, *, now: dt.datetime) -> bool:
    """Store the PDF unless one is stored already; on success queue the e-mail and record
    ``invoice.issued``, in the same transaction. Returns whether this call stored it."""
    table = cast(Table, m.Invoice.__table__)
    # One statement stores and reads back what the e-mail and the message need (not the PDF).
    row = session.execute(
        update(table)
        .where(table.c.id == invoice_id, table.c.pdf.is_(None))
        .values(
            pdf=pdf,
            pdf_sha256=hashlib.sha256(pdf).hexdigest(),
            pdf_size=len(pdf),
            status="issued",
            issued_at=now,
        )
        .returning(*(column for column in table.c if column.key != "pdf"))
    ).one_or_none()
    if row is None:
        return False
    if row.snapshot.get("logo"):  # printed in the PDF; no second copy
        session.execute(
            update(table)
            .where(table.c.id == invoice_id)
            .values(snapshot={**row.snapshot, "logo": None})
        )
    _queue_email(session, row, now)
    _record_issued(session, row, now)
    return True


def _queue_email(session: Session, row: Any, now: dt.datetime) -> None:
    recipient = row.snapshot["buyer"].get("email")
    if not recipient:
        return
    email = m.Email(
        id=ids.new_id("email"),
        tenant_id=row.tenant_id,
        environment=row.environment,
        invoice_id=row.id,
        order_id=row.order_id,
        recipient=recipient,
        status="queued",
        attempts=0,
        created_at=now,
    )
    session.add(email)
    session.flush()
    from caisse.invoices.sink import SEND_EMAIL

    jobstore.enqueue(
        session,
        SEND_EMAIL,
        email.id,
        {"email_id": email.id},
        now=now,
        tenant_id=row.tenant_id,
        max_attempts=EMAIL_MAX_ATTEMPTS,
    )


def _record_issued(session: Session, row: Any, now: dt.datetime) -> None:
    from caisse.invoices.views import invoice_view
    from caisse.orders import messages
    from caisse.orders.views import order_view

    order = session.get(m.Order, row.order_id)
    assert order is not None
    messages.record(
        session,
        tenant_id=row.tenant_id,
        environment=row.environment,
        type="invoice.issued",
        data={"invoice": invoice_view(row), "order": order_view(session, order)},
        order_id=row.order_id,
        now=now,
    )
