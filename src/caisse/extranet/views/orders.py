"""Orders: a filtered list, and one order with the timeline of what happened to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.responses import Response

from caisse.domain.states import OrderStatus
from caisse.errors import InvalidRequest
from caisse.extranet import queries
from caisse.extranet.pages import PageDep, render
from caisse.orders.views import order_view
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.storage import models as m
from caisse.tenants.services import Caller

router = APIRouter()

STATUSES = tuple(s.value for s in OrderStatus)

# Capabilities that land later add a section to the order page (deliveries, invoices): each
# returns ``(template name, context)`` or None, from the tenant's own records only.
ORDER_SECTIONS: list[Callable[[Session, Caller, m.Order], tuple[str, dict[str, Any]] | None]] = []


@router.get("/orders")
def orders(page: PageDep) -> Response:
    q = page.request.query_params
    f = queries.OrderFilters(
        status=q.get("status", "") if q.get("status", "") in STATUSES else "",
        date_from=q.get("from", "")[:10],
        date_to=q.get("to", "")[:10],
        reference=q.get("reference", "").strip()[:200],
        # ``email`` is the parameter's former name, kept so old bookmarks still filter.
        customer=(q.get("customer") or q.get("email") or "").strip()[:254],
    )
    error: InvalidRequest | None = None
    rows: list[m.Order] = []
    more = False
    try:
        with page.rt.db.read() as s:
            rows, more = queries.list_orders(s, page.caller, f, q.get("starting_after"))
    except InvalidRequest as exc:
        error = exc
    return render(
        page,
        "orders.html",
        rows=rows,
        more=more,
        filters=f,
        statuses=STATUSES,
        error=error,
        first_page=not q.get("starting_after"),
        status=400 if error else 200,
    )


@router.get("/orders/{order_id}")
def order_detail(order_id: str, page: PageDep) -> Response:
    with page.rt.db.read() as s:
        row = queries.get_order(s, page.caller, order_id)
        view = order_view(s, row)
        steps = queries.timeline(s, row)
        sources = queries.events_by_id(
            s, page.caller, {e.source_event_id for e in steps if e.source_event_id}
        )
        messages = queries.order_messages(s, page.caller, row)
        provider_events = queries.order_inbound_events(s, page.caller, row)
        sections = [x for x in (section(s, page.caller, row) for section in ORDER_SECTIONS) if x]
    return render(
        page,
        "order.html",
        order=view,
        steps=steps,
        sources=sources,
        messages=messages,
        provider_events=provider_events,
        sections=sections,
        types=SUBSCRIBED_EVENT_TYPES,
        sent=page.request.query_params.get("sent", "")[:100],
    )
