"""Fold provider snapshots into an order, in the caller's transaction: the one path by which
webhooks, reconciliation and API actions change an order's payment state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from caisse.domain.events import DomainEvent
from caisse.domain.payments import ChargeSnapshot, DisputeSnapshot, PaymentSnapshot, RefundSnapshot
from caisse.invoices.views import prefetch_documents
from caisse.orders import messages
from caisse.orders.views import order_view
from caisse.providers.base import Snapshot
from caisse.storage import orders as order_store


def prefetch_orders(s: Session, order_ids: list[str]) -> None:
    """Read what :func:`apply_snapshots` reads of each of these orders in a few statements
    for all, in a ``storage.batch.held`` transaction about to apply events to them."""
    order_store.prefetch(s, order_ids)
    prefetch_documents(s, order_ids)


def apply_snapshots(
    s: Session,
    order_id: str,
    snapshots: Iterable[Snapshot],
    *,
    now: dt.datetime,
    cause: DomainEvent,
    source_event_id: str | None = None,
) -> list[DomainEvent]:
    """Apply, save with the version guard, write timeline and partner messages; returns the
    domain events (empty when the snapshots changed nothing)."""
    row, order, rows = order_store.load_rows(s, order_id, for_update=True)
    events: list[DomainEvent] = []
    for snap in snapshots:
        if isinstance(snap, PaymentSnapshot):
            events += order.apply_payment(snap)
        elif isinstance(snap, ChargeSnapshot):
            events += order.apply_charge(snap)
        elif isinstance(snap, DisputeSnapshot):
            events += order.apply_dispute(snap)
        elif isinstance(snap, RefundSnapshot):
            events += order.apply_refund(
                snap.provider_refund_id,
                snap.provider,
                snap.amount,
                snap.status,
                snap.observed_at,
                snap.reason,
            )
    changed = list(events)
    timeline = [cause, *events] if events else [DomainEvent("event.no_change", dict(cause.data))]
    partner = order_store.save(
        s, row, order, timeline, now=now, source_event_id=source_event_id, rows=rows
    )
    if partner:
        view = order_view(s, row, rows=rows)
        for msg in partner:
            data = {"order": view, **({"details": msg.data} if msg.data else {})}
            messages.record(
                s,
                tenant_id=row.tenant_id,
                environment=row.environment,
                type=msg.type,
                data=data,
                order_id=row.id,
                now=now,
            )
    return changed
