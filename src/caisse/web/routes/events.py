from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from caisse.errors import NotFound
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.web.deps import CallerDep, RuntimeDep

router = APIRouter(tags=["events"])


def event_view(ev: m.InboundEvent, *, payload: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": ev.id,
        "object": "inbound_event",
        "provider": ev.provider,
        "provider_event_id": ev.provider_event_id,
        "type": ev.type,
        "livemode": ev.environment == "live",
        "status": ev.status,
        "order_id": ev.order_id,
        "attempts": ev.attempts,
        "error": ev.error,
        "received": int(ev.received_at.timestamp()),
        "processed": int(ev.processed_at.timestamp()) if ev.processed_at else None,
    }
    if payload:
        try:
            view["payload"] = json.loads(ev.raw_body)
        except ValueError:
            view["payload"] = None
    return view


@router.get("/v1/events", summary="Inbound provider events, newest first")
def list_events(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: str | None = None,
    type: str | None = None,
    order_id: str | None = None,
) -> dict[str, Any]:
    stmt = select(m.InboundEvent).where(
        m.InboundEvent.tenant_id == caller.tenant_id,
        m.InboundEvent.environment == caller.environment,
    )
    if status:
        stmt = stmt.where(m.InboundEvent.status == status)
    if type:
        stmt = stmt.where(m.InboundEvent.type == type)
    if order_id:
        stmt = stmt.where(m.InboundEvent.order_id == order_id)
    with rt.db.read() as s:
        rows, more = page(
            s,
            stmt,
            m.InboundEvent.id,
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return listing("/v1/events", [event_view(r) for r in rows], more)


@router.get("/v1/events/{event_id}", summary="One inbound event with its raw payload")
def get_event(event_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        ev = s.execute(
            select(m.InboundEvent).where(
                m.InboundEvent.id == event_id,
                m.InboundEvent.tenant_id == caller.tenant_id,
                m.InboundEvent.environment == caller.environment,
            )
        ).scalar_one_or_none()
        if ev is None:
            raise NotFound(f"No such event: {event_id!r}", param="id")
        return event_view(ev, payload=True)
