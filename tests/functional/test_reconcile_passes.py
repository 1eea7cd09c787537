"""What reconciliation leaves alone and how it pages: the age cap on waiting orders, skipped
disconnected accounts (both passes), event types outside the catalogue, one rate-limiter token
per Events API page, and the periodic job; against localstripe and a loopback Events API, on
both engines."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.functional.test_stripe_operations import get, pay_by_card
from tests.support.api import create_order, drain, new_merchant, post_event
from tests.support.loopback import serve

from caisse import reconcile as reconcile_module
from caisse.providers.stripe import simulate
from caisse.providers.stripe.client import StripeGateway
from caisse.providers.stripe.ratelimit import RateLimiter
from caisse.reconcile import MAX_ORDER_AGE, reconcile
from caisse.runtime import Runtime
from caisse.storage import models as m

NO_GRACE = dt.timedelta(0)
ACCOUNT = "acct_1ReconcileHotel"


def age(rt: Runtime, order_id: str, by: dt.timedelta) -> None:
    with rt.db.write() as s:
        s.execute(
            update(m.Order).where(m.Order.id == order_id).values(created_at=rt.clock.now() - by)
        )


def test_orders_older_than_the_cap_are_not_read_again(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    old = create_order(client, merchant, amount=1000)
    recent = create_order(client, merchant, amount=1000)
    for order in (old, recent):
        pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    age(rt, old["id"], MAX_ORDER_AGE + dt.timedelta(hours=1))
    age(rt, recent["id"], MAX_ORDER_AGE - dt.timedelta(hours=1))
    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=NO_GRACE, events=False)
    assert (report.checked, report.repaired) == (1, 1)
    assert get(client, merchant, old["id"])["status"] == "open"
    assert get(client, merchant, recent["id"])["status"] == "paid"


def test_a_disconnected_account_is_skipped_in_both_passes(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=1000)  # made while still connected
    r = client.put(
        "/v1/providers/stripe",
        headers=merchant.auth(),
        json={
            "publishable_key": "pk_test_" + secrets.token_hex(12),
            "secret_key": "sk_test_" + secrets.token_hex(12),
            "webhook_secrets": [merchant.whsec["test"]],
            "account_id": ACCOUNT,
        },
    )
    assert r.status_code == 200, r.text
    gone = simulate.build_event("account.application.deauthorized", livemode=False, account=ACCOUNT)
    assert post_event(client, merchant, gone).status_code == 200
    drain(rt)
    made: list[str | None] = []

    def factory(key: str, account: str | None) -> StripeGateway:
        made.append(account)
        return StripeGateway(key, api_base=localstripe_url, account=account)

    rt.stripe_factory = factory
    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=NO_GRACE)
    (row,) = report.tenants()
    assert row.skipped == "Stripe account disconnected"
    assert (row.checked, row.errors) == (0, [])
    assert made == []  # not one Stripe call for it
    assert get(client, merchant, order["id"])["status"] == "open"


class FakeEvents:
    """``GET /v1/events`` in pages of ``limit``, newest first, as Stripe lists them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = sorted(events, key=lambda e: -int(e["created"]))
        self.requests: list[dict[str, str]] = []

    async def list(self, request: Request) -> JSONResponse:
        query = dict(request.query_params)
        self.requests.append(query)
        limit = int(query.get("limit", "10"))
        start = 0
        if "starting_after" in query:
            start = 1 + next(
                i for i, e in enumerate(self.events) if e["id"] == query["starting_after"]
            )
        page = self.events[start : start + limit]
        more = start + limit < len(self.events)
        return JSONResponse({"object": "list", "url": "/v1/events", "has_more": more, "data": page})


@pytest.fixture
def events_api(rt: Runtime) -> Iterator[FakeEvents]:
    now = int(rt.clock.now().timestamp())
    listed = [
        simulate.build_event("payment_intent.created", livemode=False, created=now - 100 + i)
        for i in range(5)
    ]
    for i, foreign in enumerate(("payout.paid", "customer.created")):
        event = simulate.build_event("payment_intent.created", livemode=False, created=now - 50)
        event["type"] = foreign
        event["id"] = f"evt_1Foreign{i}" + "x" * 12
        listed.append(event)
    fake = FakeEvents(listed)
    app = Starlette(routes=[Route("/v1/events", fake.list, methods=["GET"])])
    with serve(app) as url:
        rt.stripe_factory = lambda key, account: StripeGateway(key, api_base=url, account=account)
        yield fake


def test_events_are_paged_one_token_a_page_and_foreign_types_dropped(  # type: ignore[no-untyped-def]
    client, rt, events_api, monkeypatch
) -> None:
    merchant = new_merchant(client, rt)
    monkeypatch.setattr(reconcile_module, "EVENTS_PAGE", 3)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(share=0.04, monotonic=lambda: now[0], sleep=sleep)  # 1 call/s
    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=NO_GRACE, limiter=limiter)
    assert report.errors == []
    assert len(events_api.requests) == 3  # 7 events, 3 a page
    assert [q.get("starting_after") for q in events_api.requests][1:] == [
        events_api.events[2]["id"],
        events_api.events[5]["id"],
    ]
    assert limiter.waited == 2.0  # three pages, three tokens
    assert report.events_listed == 7
    assert report.events_added == 5
    with rt.db.read() as s:
        types = set(s.scalars(select(m.InboundEvent.type)).all())
    assert types == {"payment_intent.created"}


def test_the_periodic_job_runs_reconcile_and_reschedules_itself(  # type: ignore[no-untyped-def]
    client, rt, localstripe_url
) -> None:
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=1000)
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    age(rt, order["id"], dt.timedelta(minutes=11))  # past the default grace
    reconcile_module.schedule(rt)
    reconcile_module.schedule(rt)  # idempotent: still one job
    with rt.db.write() as s:
        (job,) = s.scalars(select(m.Job).where(m.Job.kind == reconcile_module.JOB_KIND)).all()
        assert job.run_at > rt.clock.now()  # first run one interval after start
        due = rt.clock.now()
        job.run_at = due  # due now
    drain(rt)
    assert get(client, merchant, order["id"])["status"] == "paid"
    with rt.db.read() as s:
        (job,) = s.scalars(select(m.Job).where(m.Job.kind == reconcile_module.JOB_KIND)).all()
        assert job.status == "queued"
        assert job.run_at >= due + reconcile_module.INTERVAL  # the next run, one interval on
