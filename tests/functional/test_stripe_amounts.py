"""Amounts Stripe reports, end to end through a real order: a partial capture, partial
funding, a charge without its refunds list, a refund given back, and refunding during an
inquiry; signed realistic events posted to the tenant's URL (localstripe for the API calls),
on both engines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select
from tests.functional.test_stripe_operations import get, paid_order
from tests.support.api import (
    Merchant,
    create_order,
    drain,
    new_merchant,
    order_event,
    order_meta,
    post_event,
)

from caisse.providers.stripe import simulate
from caisse.reconcile import reconcile
from caisse.runtime import Runtime
from caisse.storage import models as m

FIXTURES = Path(__file__).parents[1] / "fixtures" / "stripe"
T0 = 1_767_225_600


def deliver(client: Any, rt: Runtime, merchant: Merchant, *events: dict[str, Any]) -> None:
    for event in events:
        r = post_event(client, merchant, event)
        assert r.status_code == 200, r.text
    drain(rt)


def messages(rt: Runtime, order_id: str, type_: str) -> list[dict[str, Any]]:
    with rt.db.read() as s:
        rows = s.scalars(
            select(m.Message)
            .where(m.Message.order_id == order_id, m.Message.type == type_)
            .order_by(m.Message.id)
        ).all()
        return [dict(r.payload["data"].get("details") or {}) for r in rows]


def test_a_partial_capture_is_paid_final_and_left_alone_by_reconcile(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=3000)
    authorised = order_event(
        merchant,
        order,
        "payment_intent.amount_capturable_updated",
        created=T0,
        overrides={"amount_capturable": 3000},
    )
    deliver(client, rt, merchant, authorised)
    view = get(client, merchant, order["id"])
    assert view["status"] == "processing"
    assert view["payments"][0]["status"] == "requires_capture"
    assert view["payments"][0]["amount_capturable"] == 3000

    captured = order_event(
        merchant,
        order,
        "payment_intent.succeeded",
        created=T0 + 60,
        overrides={"amount_received": 2000, "amount_capturable": 0},
    )
    deliver(client, rt, merchant, captured)
    view = get(client, merchant, order["id"])
    assert (view["status"], view["amount_paid"], view["amount_total"]) == ("paid", 2000, 3000)
    assert len(messages(rt, order["id"], "order.paid")) == 1

    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=dt.timedelta(0), events=False)
    assert report.checked == 0  # final: nothing left to ask Stripe


def test_partial_funding_then_the_rest(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=5000)
    part = order_event(merchant, order, "payment_intent.partially_funded", created=T0)
    deliver(client, rt, merchant, part)
    assert get(client, merchant, order["id"])["status"] == "partially_paid"
    assert messages(rt, order["id"], "order.paid") == []
    rest = order_event(merchant, order, "payment_intent.succeeded", created=T0 + 3600)
    deliver(client, rt, merchant, rest)
    view = get(client, merchant, order["id"])
    assert (view["status"], view["amount_paid"]) == ("paid", 5000)


def test_a_charge_without_its_refunds_list_refunds_by_amount_refunded(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=2000)
    paid = order_event(merchant, order, "payment_intent.succeeded", created=T0)
    raw = json.loads(
        (FIXTURES / "variants" / "charge.refunded.without_refunds_list.json").read_text("utf-8")
    )
    charge = raw["data"]["object"]
    charge["payment_intent"] = order["payment"]["payment_intent"]
    charge["metadata"] = order_meta(merchant, order)
    raw["created"] = T0 + 600
    deliver(client, rt, merchant, paid, raw)
    view = get(client, merchant, order["id"])
    assert (view["status"], view["amount_refunded"]) == ("partially_refunded", 700)
    assert messages(rt, order["id"], "order.refunded")[-1]["amount_refunded"] == 700


def test_a_failed_refund_is_told_to_partners_as_a_reversal(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=2000)
    paid = order_event(merchant, order, "payment_intent.succeeded", created=T0)
    pending = order_event(
        merchant, order, "refund.created", created=T0 + 60, overrides={"status": "pending"}
    )
    failed = order_event(merchant, order, "refund.failed", created=T0 + 120)
    failed["data"]["object"]["id"] = pending["data"]["object"]["id"]
    failed["data"]["object"]["amount"] = pending["data"]["object"]["amount"]
    deliver(client, rt, merchant, paid, pending)
    assert get(client, merchant, order["id"])["status"] in ("partially_refunded", "refunded")
    deliver(client, rt, merchant, failed)
    view = get(client, merchant, order["id"])
    assert (view["status"], view["amount_refunded"]) == ("paid", 0)
    told = messages(rt, order["id"], "order.refunded")
    amount = pending["data"]["object"]["amount"]
    assert told == [
        {"amount_refunded": amount, "amount_refunded_now": amount, "reversal": False},
        {"amount_refunded": 0, "amount_refunded_now": -amount, "reversal": True},
    ]


def test_an_inquiry_can_be_refunded_a_chargeback_cannot(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order_id = paid_order(client, rt, merchant, localstripe_url)
    with rt.db.read() as s:
        row = s.get(m.Order, order_id)
        assert row is not None
        pi = row.provider_payment_id

    def dispute(status: str, dispute_id: str) -> dict[str, Any]:
        return simulate.build_event(
            "charge.dispute.created",
            livemode=False,
            payment_intent_id=pi,
            amount=4000,
            overrides={"status": status, "id": dispute_id},
        )

    deliver(client, rt, merchant, dispute("warning_needs_response", "dp_1Inquiry"))
    assert get(client, merchant, order_id)["status"] == "disputed"
    r = client.post(
        f"/v1/orders/{order_id}/refunds", json={"amount": 1000}, headers=merchant.auth()
    )
    assert r.status_code == 200, r.text
    assert r.json()["amount_refunded"] == 1000

    deliver(client, rt, merchant, dispute("needs_response", "dp_1Chargeback"))
    again = client.post(f"/v1/orders/{order_id}/refunds", json={}, headers=merchant.auth())
    assert again.status_code == 409, again.text
