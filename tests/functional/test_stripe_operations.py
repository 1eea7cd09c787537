"""Refunds, manual capture, cancel and reconciliation against localstripe (a real stateful
Stripe fake), on both engines. No webhook reaches caisse here: whatever the order shows comes
from the API calls and from ``caisse reconcile`` reading PaymentIntents and the Events API."""

from __future__ import annotations

import secrets
from typing import Any

import stripe
from sqlalchemy import func, select
from tests.support.api import Merchant, create_order, new_merchant, order_body
from typer.testing import CliRunner

from caisse.cli import app as cli_app
from caisse.providers.stripe.ratelimit import RateLimiter
from caisse.reconcile import reconcile
from caisse.runtime import Runtime
from caisse.storage import models as m

GOOD_CARD = "4242424242424242"


def pay_by_card(localstripe_url: str, payment_intent: str) -> None:
    """What Stripe.js does on the buyer's page; no webhook tells caisse."""
    sdk = stripe.StripeClient("sk_test_ops", base_addresses={"api": localstripe_url})
    pm = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    sdk.v1.payment_intents.update(payment_intent, params={"payment_method": pm.id})
    sdk.v1.payment_intents.confirm(payment_intent)


def get(client: Any, merchant: Merchant, order_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/orders/{order_id}", headers=merchant.auth())
    assert r.status_code == 200, r.text
    return dict(r.json())


def count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.db.read() as s:
        return int(s.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def paid_order(client: Any, rt: Runtime, merchant: Merchant, localstripe_url: str) -> str:
    order = create_order(client, merchant, amount=4000)
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    reconcile(rt, tenant_id=merchant.tenant_id, grace=_no_grace(), events=False)
    assert get(client, merchant, order["id"])["status"] == "paid"
    return str(order["id"])


def _no_grace() -> Any:
    import datetime as dt

    return dt.timedelta(0)


def test_caisse_reconcile_repairs_a_payment_whose_webhook_never_came(
    client, rt, localstripe_url
) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=2500)
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    assert get(client, merchant, order["id"])["status"] == "open"

    env = {
        "CAISSE_DATABASE_URL": rt.settings.database_url,
        "CAISSE_DATA_DIR": str(rt.settings.data_dir),
        "CAISSE_MASTER_KEY": rt.settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": rt.settings.admin_token.reveal(),
        "CAISSE_STRIPE_API_BASE": localstripe_url,
    }
    result = CliRunner().invoke(
        cli_app, ["reconcile", "--tenant", merchant.tenant_id, "--grace-minutes", "0"], env=env
    )
    assert result.exit_code == 0, result.output

    view = get(client, merchant, order["id"])
    assert view["status"] == "paid"
    assert view["amount_paid"] == 2500
    assert count(rt, m.Message, m.Message.order_id == order["id"], m.Message.type == "order.paid")
    assert (
        count(rt, m.Message, m.Message.order_id == order["id"], m.Message.type == "order.paid") == 1
    )


def test_missed_events_are_listed_stored_once_and_processed(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order = create_order(client, merchant, amount=1800)
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])

    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=_no_grace(), events=True)
    assert report.errors == []
    assert report.events_added >= 1
    with rt.db.read() as s:
        rows = s.scalars(
            select(m.InboundEvent).where(
                m.InboundEvent.tenant_id == merchant.tenant_id,
                m.InboundEvent.order_id == order["id"],
            )
        ).all()
        assert {r.type for r in rows} == {"payment_intent.succeeded"}
        assert all(r.status == "processed" for r in rows)
        assert rows[0].headers["user-agent"].startswith("caisse-reconcile")
        cursor = s.get(m.ReconcileCursor, (merchant.tenant_id, "test", "stripe"))
        assert cursor is not None
        assert cursor.created_gt > 0
    assert get(client, merchant, order["id"])["status"] == "paid"

    # A second pass lists the same events again (overlap) and adds nothing.
    before = count(rt, m.InboundEvent, m.InboundEvent.tenant_id == merchant.tenant_id)
    again = reconcile(rt, tenant_id=merchant.tenant_id, grace=_no_grace())
    assert again.events_added == 0
    assert count(rt, m.InboundEvent, m.InboundEvent.tenant_id == merchant.tenant_id) == before


def test_every_stripe_call_of_a_pass_takes_a_token_from_the_tenant_bucket(
    client, rt, localstripe_url
) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    for _ in range(2):
        create_order(client, merchant, amount=1000)
    now = [0.0]  # a clock that only the limiter's sleeps move

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(share=0.04, monotonic=lambda: now[0], sleep=sleep)
    reconcile(rt, tenant_id=merchant.tenant_id, grace=_no_grace(), limiter=limiter)
    # test mode: 25 calls/s x 0.04 = one call a second: the events list and two PaymentIntents
    # are three calls, so the pass waited two seconds of (fake) time.
    assert limiter.rate("test") == 1.0
    assert limiter.waited == 2.0


def test_refunds_partial_then_the_rest_with_idempotency(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    order_id = paid_order(client, rt, merchant, localstripe_url)
    key = {"Idempotency-Key": secrets.token_hex(8), **merchant.auth()}

    r = client.post(f"/v1/orders/{order_id}/refunds", json={"amount": 1000}, headers=key)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "partially_refunded"
    assert r.json()["amount_refunded"] == 1000
    again = client.post(f"/v1/orders/{order_id}/refunds", json={"amount": 1000}, headers=key)
    assert again.json() == r.json()  # replayed, not refunded twice
    other = client.post(f"/v1/orders/{order_id}/refunds", json={"amount": 999}, headers=key)
    assert other.status_code == 409  # same key, other parameters

    too_much = client.post(
        f"/v1/orders/{order_id}/refunds", json={"amount": 3001}, headers=merchant.auth()
    )
    assert too_much.status_code == 400
    assert too_much.json()["error"]["param"] == "amount"

    rest = client.post(f"/v1/orders/{order_id}/refunds", json={}, headers=merchant.auth())
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["status"] == "refunded"
    assert body["amount_refunded"] == 4000
    assert sorted(x["amount"] for x in body["refunds"]) == [1000, 3000]
    assert {x["status"] for x in body["refunds"]} == {"succeeded"}
    done = client.post(f"/v1/orders/{order_id}/refunds", json={}, headers=merchant.auth())
    assert done.status_code == 409
    refunded = count(
        rt, m.Message, m.Message.order_id == order_id, m.Message.type == "order.refunded"
    )
    assert refunded == 2


def test_manual_capture_then_paid_and_cancel_of_another(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    made = client.post(
        "/v1/orders",
        json=order_body(3000, capture_method="manual"),
        headers={**merchant.auth(), "Idempotency-Key": secrets.token_hex(8)},
    )
    assert made.status_code == 201, made.text
    order = made.json()
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    reconcile(rt, tenant_id=merchant.tenant_id, grace=_no_grace(), events=False)
    authorised = get(client, merchant, order["id"])
    assert authorised["status"] == "processing"
    assert authorised["payments"][0]["status"] == "requires_capture"

    r = client.post(f"/v1/orders/{order['id']}/capture", headers=merchant.auth())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paid"
    assert r.json()["amount_paid"] == 3000
    assert (
        client.post(f"/v1/orders/{order['id']}/cancel", headers=merchant.auth()).status_code == 409
    )

    other = create_order(client, merchant, amount=1200)
    c = client.post(f"/v1/orders/{other['id']}/cancel", headers=merchant.auth())
    assert c.status_code == 200, c.text
    assert c.json()["status"] == "canceled"
    assert (
        count(rt, m.Message, m.Message.order_id == other["id"], m.Message.type == "order.canceled")
        == 1
    )
    nothing = client.post(f"/v1/orders/{other['id']}/capture", headers=merchant.auth())
    assert nothing.status_code == 409


def test_actions_on_another_tenants_order_are_404(client, rt, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    owner, stranger = new_merchant(client, rt), new_merchant(client, rt, name="Other")
    order = create_order(client, owner, amount=1000)
    for action in ("refunds", "capture", "cancel"):
        r = client.post(f"/v1/orders/{order['id']}/{action}", headers=stranger.auth())
        assert r.status_code == 404
