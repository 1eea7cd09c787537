"""What was sent to a partner endpoint, and the manual controls on top of it: send a test
webhook, retry one delivery, replay the failed ones since a time.

The same service calls as the API: :func:`caisse.delivery.worker.send_test` (the guarded client,
status and timing only, never the partner's answer), :func:`caisse.delivery.outbox.retry_delivery`
and :func:`caisse.delivery.outbox.replay`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caisse.delivery import outbox
from caisse.delivery.worker import send_test
from caisse.errors import CaisseError, Conflict, InvalidRequest, NotFound
from caisse.extranet import queries
from caisse.extranet.pages import FormDep, PageDep, redirect
from caisse.extranet.views.partners import endpoint_page
from caisse.storage import models as m
from caisse.tenants.services import Caller

router = APIRouter()


@router.post("/partners/{endpoint_id}/test")
async def test_webhook(endpoint_id: str, page: PageDep, fields: FormDep) -> Response:
    """One signed ``endpoint.test`` message; the page shows its status code and timing."""
    result = await send_test(page.rt, page.caller, endpoint_id)
    return await run_in_threadpool(endpoint_page, page, endpoint_id, test_result=result)


def _endpoint_of(s: Session, caller: Caller, delivery_id: str) -> str:
    found = s.execute(
        select(m.Delivery.endpoint_id).where(
            m.Delivery.id == delivery_id,
            m.Delivery.tenant_id == caller.tenant_id,
            m.Delivery.environment == caller.environment,
        )
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"No such delivery: {delivery_id!r}", param="id")
    return found


@router.post("/deliveries/{delivery_id}/retry")
def retry(delivery_id: str, page: PageDep, fields: FormDep) -> Response:
    """One more attempt now (refused while the endpoint is disabled)."""
    with page.rt.db.read() as s:
        endpoint_id = _endpoint_of(s, page.caller, delivery_id)
    try:
        with page.rt.db.write() as s:
            outbox.retry_delivery(s, page.caller, delivery_id, now=page.rt.clock.now())
    except CaisseError as exc:
        return endpoint_page(page, endpoint_id, status=409, error=exc)
    page.rt.wake_workers()
    return redirect(f"/ui/partners/{endpoint_id}?done=retried")


def parse_since(value: str) -> dt.datetime:
    """``YYYY-MM-DDTHH:MM`` (a ``datetime-local`` field), read as UTC."""
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value.strip(), fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    raise InvalidRequest("since is a date and time, YYYY-MM-DDTHH:MM (UTC)", param="since")


@router.post("/partners/{endpoint_id}/replay")
def replay(endpoint_id: str, page: PageDep, fields: FormDep) -> Response:
    """Queue again the failed deliveries since a time, and the messages missed while the
    endpoint was disabled (at most ``outbox.REPLAY_BATCH`` per click)."""
    try:
        since = parse_since(fields.get("since", ""))
        with page.rt.db.write() as s:
            result = outbox.replay(
                s, page.caller, endpoint_id, since=since, now=page.rt.clock.now()
            )
    except NotFound:
        raise
    except CaisseError as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        return endpoint_page(page, endpoint_id, status=status, error=exc, param=exc.param)
    page.rt.wake_workers()
    more = "&more=1" if result["has_more"] else ""
    return redirect(
        f"/ui/partners/{endpoint_id}?done=replayed&requeued={result['requeued']}"
        f"&missed={result['missed_messages']}{more}"
    )


def order_section(s: Session, caller: Caller, order: m.Order) -> tuple[str, dict[str, Any]] | None:
    """The order page's "deliveries" part: each partner message's fate at each endpoint."""
    rows = queries.order_deliveries(s, caller, order)
    if not rows:
        return None
    return "_order_deliveries.html", {"rows": rows}
