"""Enqueue invoice jobs from partner messages, in the transaction of the order change.

``order.paid`` → ``issue_invoice`` (key: the order id) and ``order.refunded`` →
``issue_credit_note`` (key: order id and the cumulative refunded amount), so a replayed or
duplicated message never issues a second document (the invoice job enqueues the credit note
of what a partial capture left). Registered on ``messages.SINKS`` at import.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from caisse.orders import messages
from caisse.storage import jobs as jobstore
from caisse.storage import models as m

ISSUE_INVOICE = "issue_invoice"
ISSUE_CREDIT_NOTE = "issue_credit_note"
SEND_EMAIL = "send_invoice_email"


def invoice_sink(session: Session, message: m.Message, now: dt.datetime) -> None:
    """React to ``order.paid`` and ``order.refunded``; ignore every other message."""
    if message.order_id is None:
        return
    if message.type == "order.paid":
        jobstore.enqueue(
            session,
            ISSUE_INVOICE,
            message.order_id,
            {"order_id": message.order_id},
            now=now,
            tenant_id=message.tenant_id,
        )
    elif message.type == "order.refunded":
        details = message.payload.get("data", {}).get("details", {})
        refunded = int(details.get("amount_refunded", 0))
        if refunded <= 0:
            return
        jobstore.enqueue(
            session,
            ISSUE_CREDIT_NOTE,
            f"{message.order_id}:{refunded}",
            {"order_id": message.order_id, "amount_refunded": refunded},
            now=now,
            tenant_id=message.tenant_id,
        )


if invoice_sink not in messages.SINKS:
    messages.SINKS.append(invoice_sink)
