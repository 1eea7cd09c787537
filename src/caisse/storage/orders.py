"""Orders: rows ⇄ the domain aggregate, with an optimistic version guard on every save.

``save`` updates ``WHERE id = ? AND version = ?`` and raises ``Conflict`` on zero rows, so two
workers that both applied an event to the same order cannot both win; the loser's job retries
against the fresh state. On PostgreSQL ``load(for_update=True)`` also takes the row lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import CursorResult, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import BindParameter

from caisse import ids
from caisse.domain.events import DomainEvent
from caisse.domain.orders import DisputeRecord, Order, PaymentRecord, RefundRecord
from caisse.domain.states import OrderStatus, PaymentPhase
from caisse.errors import Conflict
from caisse.storage import batch
from caisse.storage import models as m


@dataclass(slots=True)
class OrderRows:
    """An order's child rows as read by :func:`load_rows`, kept so that the save and the view
    that follow in the same transaction need not read them again (:func:`save` adds the rows
    it creates)."""

    payments: list[m.Payment]
    refunds: list[m.Refund]
    disputes: list[m.Dispute]


# Built once: building a statement and its cache key costs more than running it on the hot
# path (every event processed loads an order and its children).
_BY_ORDER: BindParameter[str] = bindparam("order_id")
_ORDER = select(m.Order).where(m.Order.id == _BY_ORDER)
_ORDER_FOR_UPDATE = _ORDER.with_for_update()
_OWNER_BY_ID = select(m.Order.id, m.Order.tenant_id, m.Order.environment).where(
    m.Order.id == _BY_ORDER
)
_ORDER_BY_PAYMENT_RECORD = (
    select(m.Payment.order_id)
    .where(
        m.Payment.provider == bindparam("provider"),
        m.Payment.provider_payment_id == bindparam("payment_id"),
    )
    .limit(1)
)


# Several orders at once (a processing batch), or one: the same statements.
_IN_ORDERS: BindParameter[list[str]] = bindparam("order_ids", expanding=True)
_ORDERS_FOR_UPDATE = (
    select(m.Order).where(m.Order.id.in_(_IN_ORDERS)).order_by(m.Order.id).with_for_update()
)
_CHILDREN_OF = (
    select(m.Payment).where(m.Payment.order_id.in_(_IN_ORDERS)),
    select(m.Refund).where(m.Refund.order_id.in_(_IN_ORDERS)),
    select(m.Dispute).where(m.Dispute.order_id.in_(_IN_ORDERS)),
)
_OWNERS_BY_PAYMENTS = select(
    m.Order.provider_payment_id, m.Order.id, m.Order.tenant_id, m.Order.environment
).where(
    m.Order.provider == bindparam("provider"),
    m.Order.provider_payment_id.in_(bindparam("payment_ids", expanding=True)),
)


def children_of(session: Session, order_ids: list[str]) -> dict[str, OrderRows]:
    """The child rows of each of these orders, in three statements for all."""
    found = {order_id: OrderRows([], [], []) for order_id in order_ids}
    key = {"order_ids": list(found)}
    payments, refunds, disputes = (session.scalars(stmt, key) for stmt in _CHILDREN_OF)
    for p in payments:
        found[p.order_id].payments.append(p)
    for r in refunds:
        found[r.order_id].refunds.append(r)
    for d in disputes:
        found[d.order_id].disputes.append(d)
    return found


def child_rows(session: Session, order_id: str) -> OrderRows:
    return children_of(session, [order_id])[order_id]


def prefetch(session: Session, order_ids: list[str]) -> None:
    """Lock and read these orders and their child rows in four statements, for the
    :func:`load_rows` of each to find once in this :func:`batch.held` transaction."""
    if not order_ids or not batch.active(session):
        return
    rows = list(session.scalars(_ORDERS_FOR_UPDATE, {"order_ids": sorted(set(order_ids))}))
    children = children_of(session, [row.id for row in rows])
    for row in rows:
        batch.remember(session, ("order", row.id), (row, children[row.id]))


def _owners_by_payment(
    session: Session, provider: str, payment_ids: list[str]
) -> dict[str, OrderOwner | None]:
    params = {"provider": provider, "payment_ids": sorted(set(payment_ids))}
    found = {
        pid: OrderOwner(*owner)
        for pid, *owner in session.connection().execute(_OWNERS_BY_PAYMENTS, params)
    }
    return {pid: found.get(pid) for pid in params["payment_ids"]}


def prefetch_owners(session: Session, provider: str, payment_ids: list[str]) -> None:
    """Who holds each of these provider payments (or nobody), in one statement, for
    :func:`find_by_payment` in this :func:`batch.held` transaction."""
    if not payment_ids or not batch.active(session):
        return
    for pid, owner in _owners_by_payment(session, provider, payment_ids).items():
        batch.remember(session, ("owner_by_payment", provider, pid), owner)


def load(session: Session, order_id: str, *, for_update: bool = False) -> tuple[m.Order, Order]:
    row, order, _ = load_rows(session, order_id, for_update=for_update)
    return row, order


def load_rows(
    session: Session, order_id: str, *, for_update: bool = False
) -> tuple[m.Order, Order, OrderRows]:
    """The order, as the domain sees it, and its rows. In a :func:`batch.held` transaction
    an order :func:`prefetch` read is used once (a second use reads what the first wrote)."""
    if for_update:
        loaded = batch.take(session, ("order", order_id))
        if loaded is not None:
            row, rows = loaded
            return row, to_domain(session, row, rows), rows
        batch.flush(session)
    stmt = _ORDER_FOR_UPDATE if for_update else _ORDER
    row = session.execute(stmt, {"order_id": order_id}).scalar_one()
    rows = child_rows(session, row.id)
    return row, to_domain(session, row, rows), rows


class OrderOwner(NamedTuple):
    id: str
    tenant_id: str
    environment: str


def find_by_payment(session: Session, provider: str, provider_payment_id: str) -> OrderOwner | None:
    """The order created with this provider payment, and whose it is."""

    def read() -> OrderOwner | None:
        return _owners_by_payment(session, provider, [provider_payment_id])[provider_payment_id]

    owner: OrderOwner | None = batch.recall(
        session, ("owner_by_payment", provider, provider_payment_id), read
    )
    return owner


def owner(session: Session, order_id: str) -> OrderOwner | None:
    found = session.connection().execute(_OWNER_BY_ID, {"order_id": order_id}).first()
    return OrderOwner(*found) if found is not None else None


def find_by_payment_record(session: Session, provider: str, payment_id: str) -> str | None:
    batch.flush(session)  # a payment this transaction recorded counts
    return (
        session.connection()
        .execute(_ORDER_BY_PAYMENT_RECORD, {"provider": provider, "payment_id": payment_id})
        .scalar_one_or_none()
    )


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
    values = {
        "status": order.status.value,
        "phase": order.phase.value,
        "phase_observed_at": order.phase_observed_at,
        "amount_paid": order.amount_paid,
        "amount_refunded": order.amount_refunded,
        "refunds_observed_at": order.refunds_observed_at,
        "paid_at": order.paid_at,
        "version": row.version + 1,
        "updated_at": now,
    }
    # Core statements on the session's connection: the ORM's execution layer is a large
    # share of what this hot path costs, and nothing here needs it.
    batch.defer(
        session,
        _GUARDED_UPDATE,
        [{"order_id": row.id, "expected_version": row.version, **values}],
        then=_guarded,
    )
    # The row now says what the database says, without reading it back.
    for name, value in values.items():
        set_committed_value(row, name, value)
    _sync_children(session, row.id, order, rows or child_rows(session, row.id))
    if events:
        batch.defer(
            session,
            _INSERT_EVENTS,
            [
                {
                    "order_id": row.id,
                    "type": ev.type,
                    "data": ev.data,
                    "source_event_id": source_event_id,
                    "created_at": now,
                }
                for ev in events
            ],
        )
    return [ev for ev in events if ev.is_partner_message]


def _guarded(result: CursorResult[Any], rows: list[dict[str, Any]]) -> None:
    if result.rowcount != len(rows):
        ids = ", ".join(r["order_id"] for r in rows)
        raise Conflict(f"Order {ids} changed concurrently")


_INSERT_EVENTS = insert(m.OrderEvent.__table__)  # type: ignore[arg-type]
# The SET clause is the parameters' column names (``save``'s values).
_GUARDED_UPDATE = update(m.Order).where(
    m.Order.id == bindparam("order_id"), m.Order.version == bindparam("expected_version")
)


def _sync_children(session: Session, order_id: str, order: Order, rows: OrderRows) -> None:
    _sync(session, order_id, m.Payment, "payment", order.payments, rows.payments, _PAYMENT_KEY)
    _sync(session, order_id, m.Refund, "refund", order.refunds, rows.refunds, _REFUND_KEY)
    _sync(session, order_id, m.Dispute, "dispute", order.disputes, rows.disputes, _DISPUTE_KEY)


_PAYMENT_KEY = ("provider", "provider_payment_id")
_REFUND_KEY = ("provider_refund_id",)
_DISPUTE_KEY = ("provider_dispute_id",)
_FIELDS: dict[type[Any], tuple[str, ...]] = {
    m.Payment: (
        "status",
        "amount",
        "amount_received",
        "amount_capturable",
        "failure_code",
        "failure_message",
        "method",
        "observed_at",
    ),
    m.Refund: ("amount", "status", "reason", "observed_at"),
    m.Dispute: (
        "status",
        "amount",
        "reason",
        "evidence_due_by",
        "amount_withdrawn",
        "amount_reinstated",
        "observed_at",
    ),
}


_INSERT_CHILD = {model: insert(model.__table__) for model in _FIELDS}


def _sync(
    session: Session,
    order_id: str,
    model: type[Any],
    prefix: str,
    records: list[Any],
    existing_rows: list[Any],
    key: tuple[str, ...],
) -> None:
    """Bring one child table in line with the aggregate's records. A changed row is updated
    at the next flush (only its changed values); a new one is inserted by a plain insert
    (:func:`batch.defer`: at once, or with the transaction's other held writes), and the
    object kept in ``existing_rows`` for the view is not in the session: rows are good for
    the one save that follows :func:`load_rows`."""
    fields = _FIELDS[model]
    copied = tuple(dict.fromkeys(("provider", *key, *fields)))
    existing = {tuple(getattr(r, k) for k in key): r for r in existing_rows}
    new: list[dict[str, Any]] = []
    for rec in records:
        row = existing.get(tuple(getattr(rec, k) for k in key))
        if row is None:
            values = {"id": ids.new_id(prefix), "order_id": order_id}
            values.update((name, getattr(rec, name)) for name in copied)
            new.append(values)
            existing_rows.append(model(**values))
        else:
            _copy(row, rec, fields)
    batch.defer(session, _INSERT_CHILD[model], new)


def _copy(target: Any, source: Any, names: tuple[str, ...]) -> None:
    """Set only what differs, so an unchanged row is not even looked at by the flush."""
    for name in names:
        value = getattr(source, name)
        if getattr(target, name) != value:
            setattr(target, name, value)
