"""The inbound provider event log: raw payload pretty-printed, processing status and errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from caisse.crypto import mask
from caisse.extranet import queries
from caisse.extranet.pages import PageDep, render
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES

router = APIRouter()

STATUSES = ("pending", "retrying", "processed", "unmatched", "ignored", "failed")
# Values a payload may carry that are secret to the merchant (a PaymentIntent's client secret
# lets anyone confirm that payment), masked before display.
SECRET_FIELDS = frozenset({"client_secret"})
SHOWN_HEADERS = ("user-agent", "content-type", "x-forwarded-for")


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (mask(v) if k in SECRET_FIELDS and isinstance(v, str) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@router.get("/events")
def events(page: PageDep) -> Response:
    q = page.request.query_params
    status = q.get("status", "") if q.get("status", "") in STATUSES else ""
    type_ = q.get("type", "")[:100]
    with page.rt.db.read() as s:
        rows, more = queries.list_events(s, page.caller, status, type_, q.get("starting_after"))
    filters = {k: v for k, v in (("status", status), ("type", type_)) if v}
    return render(
        page,
        "events.html",
        rows=rows,
        more=more,
        statuses=STATUSES,
        types=SUBSCRIBED_EVENT_TYPES,
        filters=filters,
        first_page=not q.get("starting_after"),
    )


@router.get("/events/{event_id}")
def event_detail(event_id: str, page: PageDep) -> Response:
    with page.rt.db.read() as s:
        row = queries.get_event(s, page.caller, event_id)
    try:
        payload: Any = redact(json.loads(row.raw_body))
    except ValueError:
        payload = row.raw_body.decode("utf-8", "replace")
    headers = {k: v for k, v in (row.headers or {}).items() if k.lower() in SHOWN_HEADERS}
    return render(
        page,
        "event.html",
        event=row,
        payload=payload,
        headers=headers,
        sent=page.request.query_params.get("sent") == "1",
    )
