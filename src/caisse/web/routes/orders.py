from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from caisse.domain.orders import LineItem
from caisse.orders import services
from caisse.orders.views import order_view
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.schemas import OrderIn

router = APIRouter(tags=["orders"])


@router.post("/v1/orders", status_code=201, summary="Create an order and its PaymentIntent")
def create_order(
    body: OrderIn,
    rt: RuntimeDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    new = services.NewOrder(
        currency=body.currency,
        lines=[
            LineItem(li.description, li.quantity, li.unit_amount, li.sku, li.tax_rate)
            for li in body.lines
        ],
        customer=body.customer.model_dump(exclude_none=True, mode="json") if body.customer else {},
        reference=body.reference,
        metadata=body.metadata,
        capture_method=body.capture_method,
    )
    status, view = services.create_order(
        rt, caller, new, body.model_dump(mode="json"), idempotency_key
    )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return JSONResponse(view, status_code=status, headers=headers)


@router.get("/v1/orders/{order_id}", summary="An order with its payments, refunds, disputes")
def get_order(order_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = services.get_order_row(s, caller, order_id)
        return order_view(s, row, box=rt.box, secrets=True)


@router.get("/v1/orders", summary="Orders, newest first")
def list_orders(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    stmt = select(m.Order).where(
        m.Order.tenant_id == caller.tenant_id, m.Order.environment == caller.environment
    )
    if status:
        stmt = stmt.where(m.Order.status == status)
    if reference:
        stmt = stmt.where(m.Order.reference == reference)
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.Order.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return listing("/v1/orders", [order_view(s, r) for r in rows], more)


@router.get("/v1/orders/{order_id}/timeline", summary="What happened to an order, in order")
def order_timeline(order_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = services.get_order_row(s, caller, order_id)
        events = s.scalars(
            select(m.OrderEvent).where(m.OrderEvent.order_id == row.id).order_by(m.OrderEvent.id)
        ).all()
        data = [
            {
                "type": e.type,
                "data": e.data,
                "source_event": e.source_event_id,
                "created": int(e.created_at.timestamp()),
            }
            for e in events
        ]
    return listing(f"/v1/orders/{order_id}/timeline", data, False)
