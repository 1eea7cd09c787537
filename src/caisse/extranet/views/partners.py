"""Partner endpoints of the environment shown (test = the partners' staging URLs, live = their
production URLs): list, add, enable or disable, delete, rotate the signing secret.

Every change goes through :mod:`caisse.delivery.endpoints`, the service behind ``/v1/endpoints``
(same URL safety check, same API-key rule, same event types). A signing secret is shown in full
once, in the answer to the form that created it (creation, rotation); every page after that
shows it masked. The partner's API key is never shown again, only its hint.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from caisse.delivery import endpoints as svc
from caisse.delivery import outbox
from caisse.domain.events import MessageType
from caisse.errors import CaisseError
from caisse.extranet import queries
from caisse.extranet.forms import validated
from caisse.extranet.pages import FormDep, Page, PageDep, redirect, render
from caisse.tenants.services import Caller
from caisse.web.schemas import EndpointIn

router = APIRouter()

EVENT_TYPES = tuple(t.value for t in MessageType)
DELIVERY_STATUSES = ("pending", "delivered", "failed")
DONE = {
    "enabled": "partners.enabled_done",
    "disabled": "partners.disabled_done",
    "deleted": "partners.deleted_done",
    "retried": "partners.retried_done",
    "replayed": "partners.replayed_done",
}
KEPT_FIELDS = ("url", "description")
#: What "replay failed deliveries since" proposes: the last day.
REPLAY_WINDOW = dt.timedelta(days=1)


def _list_page(page: Page, *, status: int = 200, **extra: Any) -> Response:
    now = page.rt.clock.now()
    with page.rt.db.read() as s:
        rows = svc.list_endpoints(s, page.caller)
        views = [svc.endpoint_view(r, page.rt.box, now) for r in rows]
    return render(
        page,
        "partners.html",
        endpoints=views,
        event_types=EVENT_TYPES,
        nonce=secrets.token_urlsafe(18),
        done=DONE.get(page.request.query_params.get("done", "")),
        status=status,
        **extra,
    )


def endpoint_page(page: Page, endpoint_id: str, *, status: int = 200, **extra: Any) -> Response:
    """One endpoint with its delivery log (shared by the delivery actions' answers)."""
    q = page.request.query_params
    only = q.get("status", "") if q.get("status", "") in DELIVERY_STATUSES else ""
    now = page.rt.clock.now()
    with page.rt.db.read() as s:
        row = svc.get_endpoint(s, page.caller, endpoint_id)
        view = svc.endpoint_view(row, page.rt.box, now)
        rows, more = queries.endpoint_deliveries(s, row, only, q.get("starting_after"))
        attempts = outbox.attempts_for(s, [d.id for d in rows])
        log = [outbox.delivery_view(d, attempts[d.id]) for d in rows]
    replay: dict[str, int] = {}
    for key in ("requeued", "missed"):
        value = q.get(key, "")
        if value.isdigit():
            replay[key] = int(value)
    return render(
        page,
        "partner.html",
        endpoint=view,
        deliveries=log,
        more=more,
        only=only,
        statuses=DELIVERY_STATUSES,
        first_page=not q.get("starting_after"),
        since_default=(now - REPLAY_WINDOW).strftime("%Y-%m-%dT%H:%M"),
        done=DONE.get(q.get("done", "")),
        replay=replay,
        replay_more=q.get("more") == "1",
        status=status,
        **extra,
    )


@router.get("/partners")
def endpoints(page: PageDep) -> Response:
    return _list_page(page)


def _body(fields: dict[str, str], event_types: list[str]) -> EndpointIn:
    """The API's own request model: the same limits as ``POST /v1/endpoints``."""
    return validated(
        EndpointIn,
        {
            "url": fields.get("url", "").strip(),
            "api_key": fields.get("api_key", "") or None,
            "event_types": event_types or None,
            "description": fields.get("description", "").strip() or None,
        },
    )


@router.post("/partners")
async def create(page: PageDep, fields: FormDep) -> Response:
    """The answer is the new endpoint's page with its signing secret in full, this once. The
    form's nonce is the service's idempotency key: submitting the same form twice (a reload)
    shows the same endpoint again instead of registering a second one."""
    form = await page.request.form()
    event_types = [str(v) for v in form.getlist("event_types")]
    try:
        body = _body(fields, event_types)
        endpoint_id, secret = await run_in_threadpool(_create, page, body, fields.get("nonce"))
    except CaisseError as exc:
        kept = {k: fields.get(k, "")[:500] for k in KEPT_FIELDS}
        return await run_in_threadpool(
            _list_page,
            page,
            status=400,
            error=exc,
            param=exc.param,
            form=kept,
            checked=event_types,
        )
    return await run_in_threadpool(endpoint_page, page, endpoint_id, revealed=secret, created=True)


def _create(page: Page, body: EndpointIn, nonce: str | None) -> tuple[str, str]:
    with page.rt.db.write() as s:
        _, view = svc.create_endpoint(
            s,
            page.rt.box,
            page.caller,
            url=body.url,
            api_key=body.api_key,
            event_types=body.event_types,
            description=body.description,
            allow_private=page.rt.settings.allow_private_targets,
            now=page.rt.clock.now(),
            idempotency_key=("ui:" + nonce[:200]) if nonce else None,
            body=body.model_dump(mode="json"),
        )
    return str(view["id"]), str(view["secret"])


@router.get("/partners/{endpoint_id}")
def endpoint(endpoint_id: str, page: PageDep) -> Response:
    return endpoint_page(page, endpoint_id)


@router.post("/partners/{endpoint_id}/status")
def set_status(endpoint_id: str, page: PageDep, fields: FormDep) -> Response:
    """Disabling fails the pending deliveries at once (replayable after enabling again)."""
    enabled = fields.get("enabled") == "1"
    with page.rt.db.write() as s:
        svc.update_endpoint(
            s,
            page.rt.box,
            page.caller,
            endpoint_id,
            svc.EndpointChanges(fields=frozenset(), enabled=enabled),
            allow_private=page.rt.settings.allow_private_targets,
            now=page.rt.clock.now(),
        )
    done = "enabled" if enabled else "disabled"
    return redirect(f"/ui/partners/{endpoint_id}?done={done}")


@router.post("/partners/{endpoint_id}/delete")
def delete(endpoint_id: str, page: PageDep, fields: FormDep) -> Response:
    with page.rt.db.write() as s:
        svc.delete_endpoint(s, page.caller, endpoint_id)
    return redirect("/ui/partners?done=deleted")


@router.post("/partners/{endpoint_id}/rotate")
def rotate(endpoint_id: str, page: PageDep, fields: FormDep) -> Response:
    """A new secret, shown once; the previous one keeps signing for the default grace period
    (24 h) so the partner can switch without losing a message."""
    with page.rt.db.write() as s:
        view = svc.rotate_secret(s, page.rt.box, page.caller, endpoint_id, now=page.rt.clock.now())
    return endpoint_page(page, endpoint_id, revealed=str(view["secret"]), rotated=True)


def step(s: Session, caller: Caller) -> queries.Step:
    """Dashboard checklist: at least one partner endpoint in this environment."""
    return queries.Step("dash.check.partner", queries.has_endpoint(s, caller), "/ui/partners")
