"""The JSON shapes of invoices, credit notes and e-mails (API, order view, partner messages)."""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from caisse.storage import batch
from caisse.storage import models as m


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def _party(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "logo"}


_SUMMARY_COLUMNS = (
    m.Invoice.id,
    m.Invoice.kind,
    m.Invoice.number,
    m.Invoice.status,
    m.Invoice.issue_date,
    m.Invoice.amount_gross,
    m.Invoice.currency,
    m.Invoice.pdf_sha256,
)


def invoice_summary(row: Any) -> dict[str, Any]:
    """The short form shown on an order (from an invoice or a row of ``_SUMMARY_COLUMNS``)."""
    return {
        "id": row.id,
        "object": "invoice",
        "kind": row.kind,
        "number": row.number,
        "status": row.status,
        "issue_date": row.issue_date.isoformat(),
        "amount_gross": row.amount_gross,
        "currency": row.currency,
        "pdf_url": f"/v1/invoices/{row.id}/pdf" if row.pdf_sha256 else None,
    }


def invoice_view(row: m.Invoice) -> dict[str, Any]:
    snap = row.snapshot
    return {
        **invoice_summary(row),
        "livemode": row.environment == "live",
        "order_id": row.order_id,
        "related_invoice": row.related_invoice_id,
        "related_invoice_number": snap.get("related_invoice_number"),
        "seller": _party(snap["seller"]),
        "buyer": _party(snap["buyer"]),
        "lines": snap["lines"],
        "amount_net": row.amount_net,
        "amount_tax": row.amount_tax,
        "vat": snap.get("vat", []),
        "payment_date": snap.get("payment_date"),
        "payment_method": snap.get("payment_method"),
        "order_reference": snap.get("order_reference"),
        "language": row.language,
        "facturx": row.facturx,
        "pdf_sha256": row.pdf_sha256,
        "pdf_size": row.pdf_size,
        "created": _ts(row.created_at),
        "issued": _ts(row.issued_at),
    }


_ORDERS_DOCUMENTS = (
    select(m.Invoice.order_id, *_SUMMARY_COLUMNS)
    .where(m.Invoice.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(m.Invoice.id)
)


def _documents_of(session: Session, order_ids: list[str]) -> dict[str, list[Any]]:
    # Only the summary's columns: loading whole rows would parse every snapshot (JSON).
    found: dict[str, list[Any]] = {order_id: [] for order_id in order_ids}
    for row in session.connection().execute(_ORDERS_DOCUMENTS, {"order_ids": list(found)}):
        found[row.order_id].append(row)
    return found


def prefetch_documents(session: Session, order_ids: list[str]) -> None:
    """The documents of these orders in one statement, for :func:`order_documents` in this
    ``batch.held`` transaction (which issues none: invoices are numbered in jobs of their own)."""
    if not order_ids or not batch.active(session):
        return
    for order_id, rows in _documents_of(session, sorted(set(order_ids))).items():
        batch.remember(session, ("documents", order_id), rows)


def order_documents(session: Session, order_id: str) -> tuple[dict[str, Any] | None, list[Any]]:
    """``(invoice summary or None, [credit note summaries])`` for ``order_view``."""
    rows = batch.recall(
        session, ("documents", order_id), lambda: _documents_of(session, [order_id])[order_id]
    )
    invoice = next((invoice_summary(r) for r in rows if r.kind == "invoice"), None)
    return invoice, [invoice_summary(r) for r in rows if r.kind == "credit_note"]


def email_view(row: m.Email) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "object": "email",
        "livemode": row.environment == "live",
        "invoice_id": row.invoice_id,
        "order_id": row.order_id,
        "to": row.recipient,
        "from": row.sender,
        "subject": row.subject,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "message_id": row.message_id,
        "created": _ts(row.created_at),
        "sent": _ts(row.sent_at),
        "text": None,
        "attachments": [],
    }
    if row.raw:
        message = message_from_bytes(row.raw, policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        view["text"] = body.get_content() if body is not None else None
        view["attachments"] = [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "size": len(part.get_payload(decode=True) or b""),
            }
            for part in message.iter_attachments()
        ]
    return view
