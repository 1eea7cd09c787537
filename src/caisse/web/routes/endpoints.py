"""Partner endpoints, their deliveries, and partner messages (``/v1/endpoints``,
``/v1/deliveries``, ``/v1/messages``); all scoped to the caller's tenant and environment."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from caisse.delivery import endpoints as svc
from caisse.delivery import outbox
from caisse.delivery.worker import send_test
from caisse.errors import NotFound
from caisse.storage import models as m
from caisse.storage.pagination import listing, page
from caisse.web.deps import CallerDep, RuntimeDep
from caisse.web.schemas import EndpointIn, EndpointPatch, ReplayIn, RotateSecretIn

router = APIRouter(tags=["endpoints"])


@router.post("/v1/endpoints", status_code=201, summary="Register a partner endpoint")
def create_endpoint(
    body: EndpointIn,
    rt: RuntimeDep,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """A test key registers a staging endpoint, a live key a production one (https only).
    The answer holds the signing secret in full: it is shown this once."""
    with rt.db.write() as s:
        status, view = svc.create_endpoint(
            s,
            rt.box,
            caller,
            url=body.url,
            api_key=body.api_key,
            event_types=body.event_types,
            description=body.description,
            allow_private=rt.settings.allow_private_targets,
            now=rt.clock.now(),
            idempotency_key=idempotency_key,
            body=body.model_dump(mode="json"),
        )
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return JSONResponse(view, status_code=status, headers=headers)


@router.get("/v1/endpoints", summary="Partner endpoints, newest first")
def list_endpoints(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> dict[str, Any]:
    stmt = select(m.Endpoint).where(
        m.Endpoint.tenant_id == caller.tenant_id, m.Endpoint.environment == caller.environment
    )
    now = rt.clock.now()
    with rt.db.read() as s:
        rows, more = page(
            s, stmt, m.Endpoint.id, limit=limit, starting_after=starting_after,
            ending_before=ending_before,
        )  # fmt: skip
        return listing("/v1/endpoints", [svc.endpoint_view(r, rt.box, now) for r in rows], more)


@router.get("/v1/endpoints/{endpoint_id}", summary="One partner endpoint (secrets masked)")
def get_endpoint(endpoint_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        return svc.endpoint_view(svc.get_endpoint(s, caller, endpoint_id), rt.box, rt.clock.now())


@router.patch("/v1/endpoints/{endpoint_id}", summary="Change, enable or disable an endpoint")
def update_endpoint(
    endpoint_id: str, body: EndpointPatch, rt: RuntimeDep, caller: CallerDep
) -> dict[str, Any]:
    fields = frozenset(body.model_fields_set)
    changes = svc.EndpointChanges(
        fields=fields,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        api_key=body.api_key,
        enabled=body.enabled,
    )
    with rt.db.write() as s:
        return svc.update_endpoint(
            s, rt.box, caller, endpoint_id, changes,
            allow_private=rt.settings.allow_private_targets, now=rt.clock.now(),
        )  # fmt: skip


@router.delete("/v1/endpoints/{endpoint_id}", summary="Delete an endpoint and its delivery log")
def delete_endpoint(endpoint_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.write() as s:
        return svc.delete_endpoint(s, caller, endpoint_id)


@router.post(
    "/v1/endpoints/{endpoint_id}/rotate_secret",
    summary="New signing secret; the old one keeps signing for the grace period (24 h)",
)
def rotate_secret(
    endpoint_id: str, rt: RuntimeDep, caller: CallerDep, body: RotateSecretIn | None = None
) -> dict[str, Any]:
    grace = dt.timedelta(seconds=(body or RotateSecretIn()).grace_seconds)
    with rt.db.write() as s:
        return svc.rotate_secret(s, rt.box, caller, endpoint_id, grace=grace, now=rt.clock.now())


@router.post("/v1/endpoints/{endpoint_id}/test", summary="Send a signed test message")
async def test_endpoint(endpoint_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    """Status and timing only: the target's answer body is never returned."""
    return await send_test(rt, caller, endpoint_id)


@router.post(
    "/v1/endpoints/{endpoint_id}/replay",
    summary="Queue again the endpoint's failed deliveries (and missed messages) since a time",
)
def replay(endpoint_id: str, body: ReplayIn, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    since = dt.datetime.fromtimestamp(body.since, dt.UTC)
    with rt.db.write() as s:
        result = outbox.replay(s, caller, endpoint_id, since=since, now=rt.clock.now())
    rt.wake_workers()
    return result


@router.get(
    "/v1/endpoints/{endpoint_id}/deliveries",
    summary="Deliveries to an endpoint, newest first, each with every attempt "
    "(the first 1 KiB of each answer)",
)
def list_deliveries(
    endpoint_id: str,
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    with rt.db.read() as s:
        endpoint = svc.get_endpoint(s, caller, endpoint_id)
        stmt = select(m.Delivery).where(m.Delivery.endpoint_id == endpoint.id)
        if status:
            stmt = stmt.where(m.Delivery.status == status)
        rows, more = page(
            s, stmt, m.Delivery.id, limit=limit, starting_after=starting_after,
            ending_before=ending_before,
        )  # fmt: skip
        attempts = outbox.attempts_for(s, [r.id for r in rows])
        data = [outbox.delivery_view(r, attempts[r.id]) for r in rows]
    return listing(f"/v1/endpoints/{endpoint_id}/deliveries", data, more)


def _delivery(s: Any, caller: Any, delivery_id: str) -> m.Delivery:
    row = s.execute(
        select(m.Delivery).where(
            m.Delivery.id == delivery_id,
            m.Delivery.tenant_id == caller.tenant_id,
            m.Delivery.environment == caller.environment,
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such delivery: {delivery_id!r}", param="id")
    return row  # type: ignore[no-any-return]


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="One delivery with every attempt (the whole kept answer, 64 KiB at most)",
)
def get_delivery(delivery_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.read() as s:
        row = _delivery(s, caller, delivery_id)
        attempts = outbox.attempts_for(s, [row.id])[row.id]
        return outbox.delivery_view(row, attempts, full_response=True)


@router.post("/v1/deliveries/{delivery_id}/retry", summary="Try a delivery again now")
def retry_delivery(delivery_id: str, rt: RuntimeDep, caller: CallerDep) -> dict[str, Any]:
    with rt.db.write() as s:
        row = outbox.retry_delivery(s, caller, delivery_id, now=rt.clock.now())
        view = outbox.delivery_view(row)
    rt.wake_workers()
    return view


def _message_view(msg: m.Message, deliveries: list[m.Delivery]) -> dict[str, Any]:
    return {
        "id": msg.id,
        "object": "message",
        "type": msg.type,
        "livemode": msg.environment == "live",
        "order_id": msg.order_id,
        "created": int(msg.created_at.timestamp()),
        "payload": msg.payload,
        "deliveries": [
            {"id": d.id, "endpoint_id": d.endpoint_id, "status": d.status} for d in deliveries
        ],
    }


@router.get("/v1/messages", summary="Partner messages, newest first")
def list_messages(
    rt: RuntimeDep,
    caller: CallerDep,
    limit: Annotated[int | None, Query()] = None,
    starting_after: str | None = None,
    ending_before: str | None = None,
    type: str | None = None,
    order_id: str | None = None,
    endpoint_id: str | None = None,
    undelivered: bool = False,
) -> dict[str, Any]:
    """``undelivered=true``: messages never delivered (a delivery not yet delivered, or none
    at all); with ``endpoint_id``, the messages meant for that endpoint that it has not
    received, those missed while it was disabled included."""
    with rt.db.read() as s:
        endpoint = svc.get_endpoint(s, caller, endpoint_id) if endpoint_id else None
    stmt = outbox.messages_query(caller, endpoint=endpoint, undelivered=undelivered)
    if type:
        stmt = stmt.where(m.Message.type == type)
    if order_id:
        stmt = stmt.where(m.Message.order_id == order_id)
    with rt.db.read() as s:
        rows, more = page(
            s, stmt, m.Message.id, limit=limit, starting_after=starting_after,
            ending_before=ending_before,
        )  # fmt: skip
        by_message: dict[str, list[m.Delivery]] = {r.id: [] for r in rows}
        if rows:
            for d in s.scalars(
                select(m.Delivery)
                .where(m.Delivery.message_id.in_(list(by_message)))
                .order_by(m.Delivery.id)
            ):
                by_message[d.message_id].append(d)
        data = [_message_view(r, by_message[r.id]) for r in rows]
    return listing("/v1/messages", data, more)


@router.get("/v1/notices", summary="Things the merchant should know (e.g. endpoint disabled)")
def list_notices(
    rt: RuntimeDep, caller: CallerDep, limit: Annotated[int | None, Query()] = None
) -> dict[str, Any]:
    n = min(max(limit or 20, 1), 100)
    with rt.db.read() as s:
        rows = s.scalars(
            select(m.Notice)
            .where(
                m.Notice.tenant_id == caller.tenant_id, m.Notice.environment == caller.environment
            )
            .order_by(m.Notice.id.desc())
            .limit(n)
        ).all()
        data = [
            {
                "id": r.id,
                "object": "notice",
                "action": r.action,
                "subject_id": r.subject_id,
                "message": r.message,
                "data": r.data,
                "created": int(r.created_at.timestamp()),
            }
            for r in rows
        ]
    return listing("/v1/notices", data, False)
