"""Orders: rows ⇄ the domain aggregate, with an optimistic version guard on every save.

``save`` updates ``WHERE id = ? AND version = ?`` and raises ``Conflict`` on zero rows, so two
workers that both applied an event to the same order cannot both win; the loser's job retries
against the fresh state. On PostgreSQL ``load(for_update=True)`` also takes the row lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from caisse import ids
from caisse.domain.events import DomainEvent
from caisse.domain.orders import DisputeRecord, Order, PaymentRecord, RefundRecord
from caisse.domain.states import OrderStatus, PaymentPhase
from caisse.errors import Conflict
from caisse.storage import models as m


@dataclass(slots=True)
class OrderRows:
    """An order's child rows as read by :func:`load_rows`, kept so that the save and the view
    that follow in the same transaction need not read them again (:func:`save` adds the rows
    it creates)."""

    payments: list[m.Payment]
    refunds: list[m.Refund]
    disputes: list[m.Dispute]


def child_rows(session: Session, order_id: str) -> OrderRows:
    return OrderRows(
        list(session.scalars(select(m.Payment).where(m.Payment.order_id == order_id))),
        list(session.scalars(select(m.Refund).where(m.Refund.order_id == order_id))),
        list(session.scalars(select(m.Dispute).where(m.Dispute.order_id == order_id))),
    )


def load(session: Session, order_id: str, *, for_update: bool = False) -> tuple[m.Order, Order]:
    row, order, _ = load_rows(session, order_id, for_update=for_update)
    return row, order


def load_rows(
    session: Session, order_id: str, *, for_update: bool = False
) -> tuple[m.Order, Order, OrderRows]:
    stmt = select(m.Order).where(m.Order.id == order_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one()
    rows = child_rows(session, row.id)
    return row, to_domain(session, row, rows), rows


def find_by_payment(session: Session, provider: str, provider_payment_id: str) -> str | None:
    return session.execute(
        select(m.Order.id).where(
            m.Order.provider == provider, m.Order.provider_payment_id == provider_payment_id
        )
    ).scalar_one_or_none()


def find_by_payment_record(session: Session, provider: str, payment_id: str) -> str | None:
    return session.execute(
        select(m.Payment.order_id)
        .where(m.Payment.provider == provider, m.Payment.provider_payment_id == payment_id)
        .limit(1)
    ).scalar_one_or_none()


def to_domain(session: Session, row: m.Order, rows: OrderRows | None = None) -> Order:
    order = Order(
        id=row.id,
        tenant_id=row.tenant_id,
        environment=row.environment,
        currency=row.currency,
        amount_total=row.amount_total,
        status=OrderStatus(row.status),
        phase=PaymentPhase(row.phase),
        phase_observed_at=row.phase_observed_at,
        amount_paid=row.amount_paid,
        amount_refunded=row.amount_refunded,
        refunds_observed_at=row.refunds_observed_at,
        paid_at=row.paid_at,
    )
    rows = rows or child_rows(session, row.id)
    for p in rows.payments:
        order.payments.append(
            PaymentRecord(
                p.provider,
                p.provider_payment_id,
                p.status,
                p.amount,
                p.amount_received,
                p.amount_capturable,
                p.failure_code,
                p.failure_message,
                p.method,
                p.observed_at,
            )
        )
    for r in rows.refunds:
        order.refunds.append(
            RefundRecord(
                r.provider, r.provider_refund_id, r.amount, r.status, r.reason, r.observed_at
            )
        )
    for d in rows.disputes:
        order.disputes.append(
            DisputeRecord(
                d.provider,
                d.provider_dispute_id,
                d.status,
                d.amount,
                d.reason,
                d.evidence_due_by,
                d.amount_withdrawn,
                d.amount_reinstated,
                d.observed_at,
            )
        )
    return order


def save(
    session: Session,
    row: m.Order,
    order: Order,
    events: list[DomainEvent],
    *,
    now: dt.datetime,
    source_event_id: str | None = None,
    rows: OrderRows | None = None,
) -> list[DomainEvent]:
    """Persist the aggregate, its timeline rows and its partner messages in the caller's
    transaction; returns the partner messages written. ``rows``: the child rows as loaded
    (else read again)."""
    result = session.execute(
        update(m.Order)
        .where(m.Order.id == row.id, m.Order.version == row.version)
        .values(
            status=order.status.value,
            phase=order.phase.value,
            phase_observed_at=order.phase_observed_at,
            amount_paid=order.amount_paid,
            amount_refunded=order.amount_refunded,
            refunds_observed_at=order.refunds_observed_at,
            paid_at=order.paid_at,
            version=row.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"Order {row.id} changed concurrently")
    session.expire(row)
    _sync_children(session, row.id, order, rows or child_rows(session, row.id))
    messages: list[DomainEvent] = []
    for ev in events:
        session.add(
            m.OrderEvent(
                order_id=row.id,
                type=ev.type,
                data=ev.data,
                source_event_id=source_event_id,
                created_at=now,
            )
        )
        if ev.is_partner_message:
            messages.append(ev)
    return messages


def _sync_children(session: Session, order_id: str, order: Order, rows: OrderRows) -> None:
    existing_p = {(p.provider, p.provider_payment_id): p for p in rows.payments}
    for rec in order.payments:
        p = existing_p.get((rec.provider, rec.provider_payment_id))
        if p is None:
            p = m.Payment(
                id=ids.new_id("payment"),
                order_id=order_id,
                provider=rec.provider,
                provider_payment_id=rec.provider_payment_id,
            )
            session.add(p)
            rows.payments.append(p)
        _copy(
            p,
            rec,
            (
                "status",
                "amount",
                "amount_received",
                "amount_capturable",
                "failure_code",
                "failure_message",
                "method",
                "observed_at",
            ),
        )
    existing_r = {r.provider_refund_id: r for r in rows.refunds}
    for rr in order.refunds:
        r = existing_r.get(rr.provider_refund_id)
        if r is None:
            r = m.Refund(
                id=ids.new_id("refund"),
                order_id=order_id,
                provider=rr.provider,
                provider_refund_id=rr.provider_refund_id,
            )
            session.add(r)
            rows.refunds.append(r)
        _copy(r, rr, ("amount", "status", "reason", "observed_at"))
    existing_d = {d.provider_dispute_id: d for d in rows.disputes}
    for dr in order.disputes:
        d = existing_d.get(dr.provider_dispute_id)
        if d is None:
            d = m.Dispute(
                id=ids.new_id("dispute"),
                order_id=order_id,
                provider=dr.provider,
                provider_dispute_id=dr.provider_dispute_id,
            )
            session.add(d)
            rows.disputes.append(d)
        _copy(
            d,
            dr,
            (
                "status",
                "amount",
                "reason",
                "evidence_due_by",
                "amount_withdrawn",
                "amount_reinstated",
                "observed_at",
            ),
        )


def _copy(target: Any, source: Any, names: tuple[str, ...]) -> None:
    for name in names:
        setattr(target, name, getattr(source, name))
