"""Read queries behind the extranet pages. Every one takes the signed-in ``Caller`` and filters
on its tenant and environment (records of another tenant or environment are simply not found).
Writes go through the capability services (credentials, users, intake), never from here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from caisse.errors import InvalidRequest, NotFound
from caisse.orders.services import get_order_row
from caisse.storage import models as m
from caisse.storage.pagination import page
from caisse.tenants.services import Caller

PAGE_SIZE = 25


def _count(s: Session, stmt: Select[Any]) -> int:
    return int(s.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())


def stripe_account(s: Session, caller: Caller) -> m.ProviderAccount | None:
    return s.execute(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == caller.tenant_id,
            m.ProviderAccount.environment == caller.environment,
            m.ProviderAccount.provider == "stripe",
        )
    ).scalar_one_or_none()


def _orders(caller: Caller) -> Select[Any]:
    return select(m.Order).where(
        m.Order.tenant_id == caller.tenant_id, m.Order.environment == caller.environment
    )


def _events(caller: Caller) -> Select[Any]:
    return select(m.InboundEvent).where(
        m.InboundEvent.tenant_id == caller.tenant_id,
        m.InboundEvent.environment == caller.environment,
    )


@dataclass(frozen=True, slots=True)
class Step:
    key: str
    done: bool
    link: str


def checklist(s: Session, caller: Caller, extra: list[Step] | None = None) -> list[Step]:
    """What is configured for this environment and what is not, in the order to do it."""
    account = stripe_account(s, caller)
    has_keys = account is not None and bool((account.secrets or {}).get("secret_key"))
    has_secret = account is not None and bool((account.secrets or {}).get("webhook_secrets"))
    users = _count(s, select(m.User.id).where(m.User.tenant_id == caller.tenant_id))
    return [
        Step("dash.check.stripe_keys", has_keys, "/ui/settings/stripe"),
        Step("dash.check.signing_secret", has_secret, "/ui/settings/stripe"),
        Step("dash.check.first_event", _count(s, _events(caller).limit(1)) > 0, "/ui/events"),
        Step("dash.check.first_order", _count(s, _orders(caller).limit(1)) > 0, "/ui/orders"),
        *(extra or []),
        Step("dash.check.teammate", users > 1, "/ui/users"),
    ]


def counts(s: Session, caller: Caller) -> dict[str, int]:
    return {
        "orders": _count(s, _orders(caller)),
        "events": _count(s, _events(caller)),
        "failed_events": _count(
            s, _events(caller).where(m.InboundEvent.status.in_(("failed", "retrying")))
        ),
    }


@dataclass(frozen=True, slots=True)
class OrderFilters:
    status: str = ""
    date_from: str = ""
    date_to: str = ""
    reference: str = ""
    customer: str = ""

    def query(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("status", self.status),
                ("from", self.date_from),
                ("to", self.date_to),
                ("reference", self.reference),
                ("customer", self.customer),
            )
            if v
        }


def _day(value: str, param: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidRequest("A date is YYYY-MM-DD", param=param) from None


def _contains(column: Any, text: str) -> Any:
    """Case-insensitive "contains", the text taken literally (``%`` and ``_`` are not
    wildcards), the same on SQLite and PostgreSQL."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def list_orders(
    s: Session, caller: Caller, f: OrderFilters, starting_after: str | None
) -> tuple[list[m.Order], bool]:
    stmt = _orders(caller)
    if f.status:
        stmt = stmt.where(m.Order.status == f.status)
    if f.date_from:
        stmt = stmt.where(m.Order.created_at >= _day(f.date_from, "from"))
    if f.date_to:
        stmt = stmt.where(m.Order.created_at < _day(f.date_to, "to") + dt.timedelta(days=1))
    if f.reference:
        stmt = stmt.where(_contains(m.Order.reference, f.reference))
    if f.customer:
        stmt = stmt.where(
            _contains(m.Order.customer["email"].as_string(), f.customer)
            | _contains(m.Order.customer["name"].as_string(), f.customer)
        )
    return page(s, stmt, m.Order.id, limit=PAGE_SIZE, starting_after=starting_after or None)


def recent_orders(s: Session, caller: Caller, limit: int = 20) -> list[m.Order]:
    return list(s.scalars(_orders(caller).order_by(m.Order.id.desc()).limit(limit)))


def get_order(s: Session, caller: Caller, order_id: str) -> m.Order:
    return get_order_row(s, caller, order_id)


def timeline(s: Session, order: m.Order) -> list[m.OrderEvent]:
    return list(
        s.scalars(
            select(m.OrderEvent).where(m.OrderEvent.order_id == order.id).order_by(m.OrderEvent.id)
        )
    )


def events_by_id(s: Session, caller: Caller, ids: set[str]) -> dict[str, m.InboundEvent]:
    if not ids:
        return {}
    rows = s.scalars(_events(caller).where(m.InboundEvent.id.in_(ids)))
    return {r.id: r for r in rows}


def order_messages(s: Session, caller: Caller, order: m.Order) -> list[m.Message]:
    return list(
        s.scalars(
            select(m.Message)
            .where(
                m.Message.tenant_id == caller.tenant_id,
                m.Message.environment == caller.environment,
                m.Message.order_id == order.id,
            )
            .order_by(m.Message.id)
        )
    )


def list_events(
    s: Session, caller: Caller, status: str, type_: str, starting_after: str | None
) -> tuple[list[m.InboundEvent], bool]:
    stmt = _events(caller)
    if status:
        stmt = stmt.where(m.InboundEvent.status == status)
    if type_:
        stmt = stmt.where(m.InboundEvent.type == type_)
    return page(s, stmt, m.InboundEvent.id, limit=PAGE_SIZE, starting_after=starting_after or None)


def get_event(s: Session, caller: Caller, event_id: str) -> m.InboundEvent:
    row: m.InboundEvent | None = s.execute(
        _events(caller).where(m.InboundEvent.id == event_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such event: {event_id!r}", param="id")
    return row


def list_users(s: Session, tenant_id: str) -> list[m.User]:
    return list(s.scalars(select(m.User).where(m.User.tenant_id == tenant_id).order_by(m.User.id)))


def order_inbound_events(s: Session, caller: Caller, order: m.Order) -> list[m.InboundEvent]:
    return list(
        s.scalars(
            _events(caller).where(m.InboundEvent.order_id == order.id).order_by(m.InboundEvent.id)
        )
    )


def endpoint_deliveries(
    s: Session, endpoint: m.Endpoint, status: str, starting_after: str | None
) -> tuple[list[m.Delivery], bool]:
    """The delivery log of one endpoint (already checked to be the caller's), newest first."""
    stmt = select(m.Delivery).where(m.Delivery.endpoint_id == endpoint.id)
    if status:
        stmt = stmt.where(m.Delivery.status == status)
    return page(s, stmt, m.Delivery.id, limit=PAGE_SIZE, starting_after=starting_after or None)


def order_deliveries(
    s: Session, caller: Caller, order: m.Order
) -> list[tuple[m.Delivery, m.Endpoint]]:
    """Deliveries of the order's partner messages, with their endpoint, oldest first."""
    rows = s.execute(
        select(m.Delivery, m.Endpoint)
        .join(m.Message, m.Message.id == m.Delivery.message_id)
        .join(m.Endpoint, m.Endpoint.id == m.Delivery.endpoint_id)
        .where(
            m.Delivery.tenant_id == caller.tenant_id,
            m.Delivery.environment == caller.environment,
            m.Message.order_id == order.id,
        )
        .order_by(m.Delivery.id)
    ).all()
    return [(d, e) for d, e in rows]


def provider_account(s: Session, caller: Caller, provider: str) -> m.ProviderAccount | None:
    return s.execute(
        select(m.ProviderAccount).where(
            m.ProviderAccount.tenant_id == caller.tenant_id,
            m.ProviderAccount.environment == caller.environment,
            m.ProviderAccount.provider == provider,
        )
    ).scalar_one_or_none()


def list_catalog(
    s: Session, caller: Caller, starting_after: str | None
) -> tuple[list[m.CatalogItem], bool]:
    stmt = select(m.CatalogItem).where(
        m.CatalogItem.tenant_id == caller.tenant_id,
        m.CatalogItem.environment == caller.environment,
    )
    return page(s, stmt, m.CatalogItem.id, limit=PAGE_SIZE, starting_after=starting_after or None)


def has_endpoint(s: Session, caller: Caller) -> bool:
    stmt = select(m.Endpoint.id).where(
        m.Endpoint.tenant_id == caller.tenant_id, m.Endpoint.environment == caller.environment
    )
    return _count(s, stmt.limit(1)) > 0


NOTICES_SHOWN = 5


def unread_notices(s: Session, caller: Caller) -> list[m.Notice]:
    """The latest notices of the environment shown that nobody dismissed yet."""
    return list(
        s.scalars(
            select(m.Notice)
            .where(
                m.Notice.tenant_id == caller.tenant_id,
                m.Notice.environment == caller.environment,
                m.Notice.read_at.is_(None),
            )
            .order_by(m.Notice.id.desc())
            .limit(NOTICES_SHOWN)
        )
    )


def dismiss_notice(s: Session, caller: Caller, notice_id: int, now: dt.datetime) -> None:
    """Mark one notice read (it stays listed by ``GET /v1/notices``)."""
    row = s.get(m.Notice, notice_id)
    if row is None or row.tenant_id != caller.tenant_id or row.environment != caller.environment:
        raise NotFound("No such notice")
    if row.read_at is None:
        row.read_at = now
