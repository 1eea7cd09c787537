"""Disputes, dashboard refunds, account flags and the legacy types, as signed realistic events
posted to the tenant's callback URL, in order and out of order, on both engines."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tests.support.api import (
    SCENARIO_T0 as T0,
)
from tests.support.api import (
    Merchant,
    create_order,
    drain,
    flow,
    new_merchant,
    order_meta,
    post_event,
)

from caisse.providers.stripe import simulate
from caisse.providers.stripe.catalog import SUBSCRIBED_EVENT_TYPES
from caisse.runtime import Runtime
from caisse.storage import models as m


@pytest.fixture
def merchant(client: Any, rt: Runtime) -> Merchant:
    return new_merchant(client, rt)


def deliver(client: Any, rt: Runtime, merchant: Merchant, events: list[dict[str, Any]]) -> None:
    for event in events:
        r = post_event(client, merchant, event)
        assert r.status_code == 200, r.text
    drain(rt)


def view(client: Any, merchant: Merchant, order_id: str) -> dict[str, Any]:
    return dict(client.get(f"/v1/orders/{order_id}", headers=merchant.auth()).json())


def messages(rt: Runtime, order_id: str) -> list[tuple[str, dict[str, Any]]]:
    with rt.db.read() as s:
        rows = s.scalars(
            select(m.Message).where(m.Message.order_id == order_id).order_by(m.Message.id)
        ).all()
        return [
            (r.type, dict(r.payload.get("data", {}).get("details") or {}))
            for r in rows
            if r.type.startswith("order.")  # invoice.issued rides along; not this file's topic
        ]


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute_lifecycle_in_order(client, rt, merchant, outcome) -> None:  # type: ignore[no-untyped-def]
    order_id, events = flow(client, merchant, f"dispute_{outcome}")
    opened_at = next(i for i, e in enumerate(events) if e["type"] == "charge.dispute.created")
    deliver(client, rt, merchant, events[: opened_at + 2])  # created, funds_withdrawn

    during = view(client, merchant, order_id)
    assert during["status"] == "disputed"
    (dispute,) = during["disputes"]
    assert dispute["status"] == "needs_response"
    assert dispute["amount_withdrawn"] == 2000
    assert dispute["evidence_due_by"] > T0
    assert dispute["reason"] == "fraudulent"

    deliver(client, rt, merchant, events[opened_at + 2 :])
    after = view(client, merchant, order_id)
    (dispute,) = after["disputes"]
    assert dispute["status"] == outcome
    assert after["status"] == "paid"  # no longer disputed; the payment history stays
    assert dispute["amount_reinstated"] == (2000 if outcome == "won" else 0)
    sent = dict(messages(rt, order_id))  # message ids sort by millisecond only: compare as sets
    assert set(sent) == {"order.paid", "order.dispute.opened", "order.dispute.closed"}
    assert len(messages(rt, order_id)) == 3
    assert sent["order.dispute.opened"]["evidence_due_by"] is not None
    assert sent["order.dispute.closed"]["outcome"] == outcome


def test_dispute_closed_before_created_ends_the_same(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order_id, events = flow(client, merchant, "dispute_won")
    deliver(client, rt, merchant, list(reversed(events)))
    after = view(client, merchant, order_id)
    (dispute,) = after["disputes"]
    assert dispute["status"] == "won"
    assert dispute["amount_withdrawn"] == dispute["amount_reinstated"] == 2000
    assert after["status"] == "paid"
    types = [t for t, _ in messages(rt, order_id)]
    assert sorted(types) == ["order.dispute.closed", "order.dispute.opened", "order.paid"]


def test_an_inquiry_warning_is_disputed_until_warning_closed(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order = create_order(client, merchant, amount=2000)
    pi = order["payment"]["payment_intent"]
    meta = order_meta(merchant, order)
    paid = simulate.build_event(
        "payment_intent.succeeded", livemode=False, payment_intent_id=pi, metadata=meta, created=T0
    )
    created = simulate.build_event(
        "charge.dispute.created",
        livemode=False,
        payment_intent_id=pi,
        created=T0 + 10,
        overrides={"status": "warning_needs_response", "id": "dp_inquiry1"},
    )
    closed = simulate.build_event(
        "charge.dispute.closed",
        livemode=False,
        payment_intent_id=pi,
        created=T0 + 20,
        overrides={"status": "warning_closed", "id": "dp_inquiry1", "balance_transactions": []},
    )
    deliver(client, rt, merchant, [paid, created])
    assert view(client, merchant, order["id"])["status"] == "disputed"
    deliver(client, rt, merchant, [closed])
    after = view(client, merchant, order["id"])
    assert after["status"] == "paid"
    assert after["disputes"][0]["status"] == "warning_closed"
    assert dict(messages(rt, order["id"]))["order.dispute.closed"]["outcome"] == "warning_closed"


def test_dashboard_refunds_before_the_payment_end_partially_refunded(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order_id, events = flow(client, merchant, "partial_refund", amount=4000, refunds=[500, 700])
    deliver(client, rt, merchant, list(reversed(events)))
    after = view(client, merchant, order_id)
    assert after["status"] == "partially_refunded"
    assert after["amount_paid"] == 4000
    assert after["amount_refunded"] == 1200
    types = [t for t, _ in messages(rt, order_id)]
    assert types.count("order.paid") == 1
    assert "order.refunded" in types


def test_a_failed_refund_is_given_back(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    order = create_order(client, merchant, amount=3000)
    pi = order["payment"]["payment_intent"]
    meta = order_meta(merchant, order)
    paid = simulate.build_event(
        "payment_intent.succeeded",
        livemode=False,
        payment_intent_id=pi,
        metadata=meta,
        created=T0,
        amount=3000,
    )
    pending = simulate.build_event(
        "refund.created",
        livemode=False,
        payment_intent_id=pi,
        amount=3000,
        created=T0 + 60,
        overrides={"id": "re_willfail", "amount": 1000, "status": "pending"},
    )
    failed = simulate.build_event(
        "refund.failed",
        livemode=False,
        payment_intent_id=pi,
        amount=3000,
        created=T0 + 120,
        overrides={"id": "re_willfail", "amount": 1000},
    )
    deliver(client, rt, merchant, [paid, pending])
    during = view(client, merchant, order["id"])
    assert (during["status"], during["amount_refunded"]) == ("partially_refunded", 1000)
    deliver(client, rt, merchant, [failed, pending])  # the stale pending comes again: ignored
    after = view(client, merchant, order["id"])
    assert (after["status"], after["amount_refunded"]) == ("paid", 0)
    assert after["refunds"][0]["status"] == "failed"


def test_account_updated_turns_orders_off_and_on(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    acct = "acct_1HotelConnect"
    r = client.put(
        "/v1/providers/stripe",
        headers=merchant.auth(),
        json={
            "publishable_key": "pk_test_" + "a" * 24,
            "secret_key": "sk_test_" + "b" * 24,
            "webhook_secrets": [merchant.whsec["test"]],
            "account_id": acct,
        },
    )
    assert r.status_code == 200, r.text
    disabled = simulate.build_event(
        "account.updated",
        livemode=False,
        account=acct,
        created=T0 + 100,
        overrides={
            "charges_enabled": False,
            "payouts_enabled": False,
            "requirements": {"currently_due": ["external_account"]},
        },
    )
    enabled = simulate.build_event(
        "account.updated",
        livemode=False,
        account=acct,
        created=T0 + 200,
        overrides={"charges_enabled": True, "payouts_enabled": True},
    )
    foreign = simulate.build_event("account.updated", livemode=False, account="acct_1Stranger")
    assert post_event(client, merchant, foreign).status_code == 400  # not this tenant's account

    deliver(client, rt, merchant, [disabled])
    shown = client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["charges_enabled"] is False
    refused = client.post(
        "/v1/orders",
        json={
            "currency": "eur",
            "lines": [{"description": "Nuit", "quantity": 1, "unit_amount": 9000}],
        },
        headers=merchant.auth(),
    )
    assert refused.status_code == 400
    assert "disabled charges" in refused.json()["error"]["message"]

    deliver(client, rt, merchant, [enabled, disabled])  # the older "disabled" comes late
    assert client.get("/v1/providers/stripe", headers=merchant.auth()).json()["charges_enabled"]
    create_order(client, merchant, amount=9000)


@pytest.mark.parametrize(
    "event_type",
    [
        "source.chargeable",
        "customer.source.updated",
        "payment_method.automatically_updated",
        "issuing_card.updated",
        "issuing_cardholder.updated",
        "charge.pending",
        "charge.failed",
    ],
)
def test_stored_only_types_are_kept_and_change_nothing(client, rt, merchant, event_type) -> None:  # type: ignore[no-untyped-def]
    order = create_order(client, merchant, amount=2000)
    event = simulate.build_event(
        event_type,
        livemode=False,
        payment_intent_id=order["payment"]["payment_intent"],
        metadata=order_meta(merchant, order),
    )
    deliver(client, rt, merchant, [event])
    with rt.db.read() as s:
        row = s.execute(
            select(m.InboundEvent).where(m.InboundEvent.provider_event_id == event["id"])
        ).scalar_one()
        assert row.status == "processed"
        assert row.error is None
    assert view(client, merchant, order["id"])["status"] == "open"
    assert messages(rt, order["id"]) == []


def test_every_catalogue_type_is_accepted_and_processed(client, rt, merchant) -> None:  # type: ignore[no-untyped-def]
    """Nothing in the catalogue fails or is left pending (unmatched means: no such order)."""
    ids = []
    for event_type in SUBSCRIBED_EVENT_TYPES:
        if event_type.startswith("account."):
            continue  # account events are tested with a connected account above
        event = simulate.build_event(event_type, livemode=False)
        assert post_event(client, merchant, event).status_code == 200
        ids.append(event["id"])
    drain(rt)
    with rt.db.read() as s:
        statuses = dict(
            s.execute(
                select(m.InboundEvent.type, m.InboundEvent.status).where(
                    m.InboundEvent.provider_event_id.in_(ids)
                )
            ).all()
        )
    assert len(statuses) == len(ids)
    assert set(statuses.values()) <= {"processed", "unmatched"}
