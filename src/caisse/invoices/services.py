"""Issuing invoices and credit notes: numbering with a snapshot, then the PDF, stored once.

Two steps, each its own transaction, so that the number lock is never held while rendering:

1. ``open_invoice`` / ``open_credit_note`` take the next number and insert the invoice row with a
   snapshot of everything it prints (seller, buyer, lines, dates), in one transaction: numbered
   and recorded together, or neither (see ``numbering``). What could make a live document
   impossible to issue is settled in that transaction: the seller's legal details and the fonts
   are checked before the number is taken, the snapshot is cleaned (``snapshot``), and the
   Factur-X XML is built and XSD-checked before the flush, so a failure rolls the number back.
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
import weakref
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from caisse import ids
from caisse.clock import Clock, as_utc
from caisse.domain.orders import COUNTED_REFUND_STATUSES
from caisse.errors import Conflict
from caisse.invoices import numbering, snapshot
from caisse.invoices.document import InvoiceDocument, InvoiceLine, Party
from caisse.storage import jobs as jobstore
from caisse.storage import models as m


class InvoiceNotReady(Conflict):
    """A credit note waits for its order's invoice (the job retries)."""

    code = "invoice_not_ready"


# -- snapshots ------------------------------------------------------------------------------


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
        legal_form=data.get("legal_form"),
        share_capital=data.get("share_capital"),
        rcs=data.get("rcs"),
        # Snapshots from before the B2B distinction printed the B2B mentions for every buyer.
        is_business=data.get("is_business", True),
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
    clock: Clock | None,
) -> m.Invoice:
    legal = tenant.legal or {}
    seller = snapshot.seller_snapshot(tenant)
    customer = order.customer or {}
    language = customer.get("language") or legal.get("language") or "fr"
    if language not in ("fr", "en"):
        language = "fr"
    live = order.environment == "live"
    if live:  # refusals come before the number is taken: no gap in the live series
        from caisse.invoices.render import require_unicode_fonts

        snapshot.check_live(seller, lines)
        require_unicode_fonts()
    configured = snapshot.clean_text(legal.get("vat_exemption_reason"))
    data: dict[str, Any] = {
        "seller": seller,
        "buyer": snapshot.buyer_snapshot(order, seller["country"]),
        "lines": lines,
        "payment_date": payment_date.isoformat(),
        "payment_method": _payment_method(session, order.id),
        "order_reference": snapshot.clean_text(order.reference) or order.id,
        "related_invoice_number": related.number if related else None,
        "footer": snapshot.clean_text(legal.get("invoice_footer"), single_line=False),
        "vat_exemption_reason": snapshot.exemption_reason(seller, lines, configured),
        "logo": legal.get("logo") or None,  # dropped once the PDF is stored
    }
    year = snapshot.local_date(now, seller["country"]).year
    series, value = numbering.take_next(
        session, tenant_id=order.tenant_id, environment=order.environment, year=year
    )
    # The date is read once the sequence is locked, so number N+1 never predates number N.
    moment = clock.now() if clock is not None else now
    issue_date = snapshot.local_date(moment, seller["country"])
    if issue_date.year != year:  # the year turned while waiting for the lock: start again
        raise Conflict("The invoice year changed while numbering; retry")
    row = m.Invoice(
        id=ids.new_id("invoice"),
        tenant_id=order.tenant_id,
        environment=order.environment,
        order_id=order.id,
        kind=kind,
        source_key=source_key,
        series=series,
        year=year,
        sequence=value,
        number=numbering.format_number(series, year, value),
        status="numbered",
        issue_date=issue_date,
        currency=order.currency,
        amount_net=0,
        amount_tax=0,
        amount_gross=0,
        language=language,
        snapshot=data,
        related_invoice_id=related.id if related else None,
        facturx=live,
        created_at=moment,
    )
    doc = document_from(row)  # validates the snapshot before anything is committed
    totals = doc.totals
    row.amount_net, row.amount_tax, row.amount_gross = totals.net, totals.tax, totals.gross
    if live:
        # Built and checked in the numbering transaction: an XML that cannot pass the XSD
        # rolls the number back instead of leaving it taken by a document never issued.
        from caisse.invoices.facturx import checked_xml

        _CHECKED_XML[row] = checked_xml(doc)  # the PDF step reuses it (same snapshot)
    row.snapshot = {
        **data,
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


# The XSD-checked XML of rows numbered by this process, for their PDF step (weak: a row that is
# never rendered here, e.g. after a crash, is checked again from its snapshot).
_CHECKED_XML: weakref.WeakKeyDictionary[m.Invoice, bytes] = weakref.WeakKeyDictionary()


def _by_source(session: Session, order: m.Order, source_key: str) -> m.Invoice | None:
    return session.scalars(
        select(m.Invoice).where(
            m.Invoice.tenant_id == order.tenant_id,
            m.Invoice.environment == order.environment,
            m.Invoice.source_key == source_key,
        )
    ).one_or_none()


def open_invoice(
    session: Session, order_id: str, *, now: dt.datetime, clock: Clock | None = None
) -> m.Invoice | None:
    """The order's invoice, numbered now if it has none; None if the order was never paid.
    With ``clock``, the issue date is read from it once the number is taken."""
    order = session.get(m.Order, order_id)
    if order is None or order.paid_at is None:
        return None
    source_key = f"invoice:{order.id}"
    existing = _by_source(session, order, source_key)
    if existing is not None:
        return existing
    tenant = session.get(m.Tenant, order.tenant_id)
    assert tenant is not None
    country = snapshot.seller_snapshot(tenant)["country"]
    return _insert(
        session,
        order=order,
        tenant=tenant,
        kind="invoice",
        source_key=source_key,
        lines=snapshot.order_lines(order),
        payment_date=snapshot.local_date(order.paid_at, country),
        related=None,
        now=now,
        clock=clock,
    )


_UNSETTLED = COUNTED_REFUND_STATUSES - {"succeeded"}


def unsettled_refunds(session: Session, order_id: str) -> tuple[int, dt.datetime | None]:
    """Refunded amount still in flight (pending, requires_action) and when the oldest such
    refund was seen: it is counted in the order's ``amount_refunded`` but may still fail."""
    amount, oldest = session.execute(
        select(func.coalesce(func.sum(m.Refund.amount), 0), func.min(m.Refund.observed_at)).where(
            m.Refund.order_id == order_id, m.Refund.status.in_(_UNSETTLED)
        )
    ).one()
    return int(amount), oldest


def open_credit_note(
    session: Session,
    order_id: str,
    amount_refunded: int,
    *,
    now: dt.datetime,
    clock: Clock | None = None,
) -> m.Invoice | None:
    """A credit note bringing the order's credited total up to what the buyer was not charged
    for good: the part of the total a partial capture left (:func:`uncaptured`), then what was
    refunded.

    Only **settled** refunds are credited: the order's ``amount_refunded`` counts pending
    refunds too (as Stripe does), and a pending refund may still fail, so the in-flight part
    is left out until it succeeds (the job looks again, see ``refund_recheck_at``).
    ``amount_refunded`` is the level that triggered the job; the order's current state wins.

    Raises ``InvoiceNotReady`` while the order's invoice is not issued; None when nothing is
    left to credit (an older refund level arriving late, already covered, or still pending).
    """
    order = session.get(m.Order, order_id)
    if order is None or order.paid_at is None:
        return None
    pending, _ = unsettled_refunds(session, order.id)
    left = uncaptured(order)
    settled = left + max(order.amount_refunded - pending, 0)
    invoice = session.scalars(
        select(m.Invoice)
        .where(m.Invoice.order_id == order.id, m.Invoice.kind == "invoice")
        .with_for_update()  # serialises the credit notes of one order
    ).one_or_none()
    if invoice is None:
        if settled <= 0:
            return None
        raise InvoiceNotReady(f"Order {order.id} has no invoice yet")
    target = min(settled, invoice.amount_gross)
    existing = _by_source(session, order, f"credit_note:{order.id}:{target}")
    if existing is not None:
        return existing
    credited = session.execute(
        select(func.coalesce(func.sum(m.Invoice.amount_gross), 0)).where(
            m.Invoice.order_id == order.id, m.Invoice.kind == "credit_note"
        )
    ).scalar_one()
    amount = target - int(credited)
    if amount <= 0:
        return None
    tenant = session.get(m.Tenant, order.tenant_id)
    assert tenant is not None
    if credited == 0 and amount == invoice.amount_gross:
        lines = list(invoice.snapshot["lines"])  # a full refund credits the invoice's lines
    else:
        # The part a partial capture left is credited first, under its own label.
        not_captured = min(amount, max(left - int(credited), 0))
        lines = partial_lines(invoice, not_captured, _NOT_CAPTURED) + partial_lines(
            invoice, amount - not_captured
        )
    refunded_at = session.execute(
        select(func.max(m.Refund.observed_at)).where(
            m.Refund.order_id == order.id, m.Refund.status == "succeeded"
        )
    ).scalar_one()
    if refunded_at is None and left:
        refunded_at = order.paid_at  # the capture is when the rest was let go
    country = snapshot.seller_snapshot(tenant)["country"]
    return _insert(
        session,
        order=order,
        tenant=tenant,
        kind="credit_note",
        source_key=f"credit_note:{order.id}:{target}",
        lines=lines,
        # The refund's own date where the provider told it; else the day it is credited.
        payment_date=snapshot.local_date(as_utc(refunded_at) if refunded_at else now, country),
        related=invoice,
        now=now,
        clock=clock,
    )


REFUND_RECHECK_MIN = dt.timedelta(minutes=1)
REFUND_RECHECK_MAX = dt.timedelta(hours=6)
REFUND_RECHECK_GIVE_UP = dt.timedelta(days=60)


def refund_recheck_at(oldest: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """When to look again at an order with refunds in flight: half the oldest one's age,
    between 1 minute and 6 hours; None after 60 days (the refund never settled)."""
    age = now - as_utc(oldest) if oldest is not None else dt.timedelta(0)
    if age > REFUND_RECHECK_GIVE_UP:
        return None
    return now + min(max(age / 2, REFUND_RECHECK_MIN), REFUND_RECHECK_MAX)


def uncaptured(order: m.Order) -> int:
    """What a partial capture left of a paid order's total: never charged, so credited.

    A paid order whose payments brought in less than its total was captured in part (a hotel
    charging less than it held, say): the invoice states the order as sold, and a credit note
    the rest, so that the documents add up to what the buyer paid.
    """
    if order.paid_at is None or order.amount_paid <= 0:
        return 0
    return max(order.amount_total - order.amount_paid, 0)


_PARTIAL = {"fr": "Remboursement partiel – commande {ref}", "en": "Partial refund – order {ref}"}
_NOT_CAPTURED = {
    "fr": "Montant non prélevé (capture partielle) – commande {ref}",
    "en": "Amount not charged (partial capture) – order {ref}",
}


def partial_lines(
    invoice: m.Invoice, amount: int, labels: dict[str, str] = _PARTIAL
) -> list[dict[str, Any]]:
    """A partial credit as one line per VAT rate of the invoice, sharing ``amount`` in
    proportion to each rate's gross (largest remainders), so the VAT credited follows the VAT
    invoiced."""
    if amount <= 0:
        return []
    groups = [(v["rate"], int(v["gross"])) for v in invoice.snapshot.get("vat", [])]
    total = sum(gross for _, gross in groups) or 1
    shares = [amount * gross // total for _, gross in groups]
    remainders = sorted(range(len(groups)), key=lambda i: (-(amount * groups[i][1] % total), i))
    for i in remainders[: amount - sum(shares)]:
        shares[i] += 1
    label = labels.get(invoice.language, labels["en"]).format(
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
    part = None
    if row.facturx:  # checked when numbered in this process; else (a retry) checked now
        xml = _CHECKED_XML.pop(row, None)
        part = FacturXPart(xml if xml is not None else checked_xml(doc), XMP)
    return render_pdf(doc, logo=base64.b64decode(logo) if logo else None, facturx=part)


_FACTURX_XMP = b"<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>"


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
            # What the stored bytes are, not what was asked for (PDF/A keeps XMP uncompressed).
            facturx=_FACTURX_XMP in pdf,
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
