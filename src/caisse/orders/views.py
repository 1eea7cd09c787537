"""The one JSON shape of an order, shared by the API, the extranet and partner messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from caisse.crypto import SecretBox
from caisse.invoices.views import order_documents
from caisse.storage import models as m
from caisse.storage.orders import OrderRows, child_rows


def _ts(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None else None


def order_view(
    session: Session,
    row: m.Order,
    *,
    box: SecretBox | None = None,
    secrets: bool = False,
    rows: OrderRows | None = None,
) -> dict[str, Any]:
    """The order with its payments, refunds and disputes. ``secrets`` adds the PaymentIntent's
    client secret, which only the tenant's own API calls receive (never partners). ``rows``:
    the child rows already at hand in this transaction (else read)."""
    rows = rows or child_rows(session, row.id)
    payments, refunds, disputes = rows.payments, rows.refunds, rows.disputes
    invoice, credit_notes = order_documents(session, row.id)
    payment: dict[str, Any] = {
        "provider": row.provider,
        "payment_intent": row.provider_payment_id if row.provider == "stripe" else None,
        "provider_payment_id": row.provider_payment_id,
        "publishable_key": row.provider_publishable_key,
    }
    if secrets and box is not None and row.provider_client_secret:
        payment["client_secret"] = box.decrypt(row.provider_client_secret)
    return {
        "id": row.id,
        "object": "order",
        "livemode": row.environment == "live",
        "reference": row.reference,
        "status": row.status,
        "currency": row.currency,
        "amount_total": row.amount_total,
        "amount_paid": row.amount_paid,
        "amount_refunded": row.amount_refunded,
        "customer": row.customer,
        "lines": row.lines.get("data", []),
        "metadata": row.metadata_,
        "payment": payment,
        "payments": [
            {
                "id": p.id,
                "provider": p.provider,
                "provider_payment_id": p.provider_payment_id,
                "status": p.status,
                "amount": p.amount,
                "amount_received": p.amount_received,
                "amount_capturable": p.amount_capturable,
                "method": p.method,
                "failure_code": p.failure_code,
                "failure_message": p.failure_message,
            }
            for p in payments
        ],
        "refunds": [
            {
                "id": r.id,
                "provider_refund_id": r.provider_refund_id,
                "amount": r.amount,
                "status": r.status,
                "reason": r.reason,
            }
            for r in refunds
        ],
        "disputes": [
            {
                "id": d.id,
                "provider_dispute_id": d.provider_dispute_id,
                "status": d.status,
                "amount": d.amount,
                "reason": d.reason,
                "evidence_due_by": _ts(d.evidence_due_by),
                "amount_withdrawn": d.amount_withdrawn,
                "amount_reinstated": d.amount_reinstated,
            }
            for d in disputes
        ],
        "invoice": invoice,
        "credit_notes": credit_notes,
        "paid_at": _ts(row.paid_at),
        "created": _ts(row.created_at),
        "updated": _ts(row.updated_at),
    }
