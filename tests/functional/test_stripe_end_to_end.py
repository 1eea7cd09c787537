"""A real payment, end to end, on both engines: caisse served by uvicorn with its worker, the
PaymentIntent created at localstripe, paid the way a browser does (PaymentMethod, update,
confirm), and localstripe's own signed webhook turning the order ``paid``.

localstripe keeps a failed charge as the PaymentIntent's ``latest_charge`` for good, so it
cannot confirm the same intent again after a decline; the retry's ``payment_intent.succeeded``
is therefore signed here, exactly as Stripe would send it for the second attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select
from starlette.testclient import TestClient
from tests.support.api import Merchant, create_order, new_merchant, order_meta, post_event, wait_for
from tests.support.servers import LiveCaisse, live_caisse, localstripe_process

from caisse.providers.stripe import simulate
from caisse.reconcile import reconcile
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.web.app import create_app

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # localstripe: attaches, then the charge is declined
WEBHOOK_ID = "caisse-e2e"  # one id: each test replaces the previous test's endpoint


@pytest.fixture
def live(rt: Runtime, localstripe_url: str) -> Iterator[LiveCaisse]:
    rt.settings = dataclasses.replace(rt.settings, stripe_api_base=localstripe_url)
    with live_caisse(rt, run_worker=True) as server:
        yield server


@pytest.fixture
def http(live: LiveCaisse) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


@pytest.fixture
def merchant(http: httpx.Client, rt: Runtime, live: LiveCaisse, localstripe_url: str) -> Merchant:
    merchant = new_merchant(http, rt)
    r = httpx.post(
        f"{localstripe_url}/_config/webhooks/{WEBHOOK_ID}",
        data={
            "url": f"{live.url}/callbacks/v1.0/stripe/{merchant.tenant_id}",
            "secret": merchant.whsec["test"],
        },
        auth=("sk_test_e2e", ""),
    )
    r.raise_for_status()
    return merchant


def sdk(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_e2e", base_addresses={"api": localstripe_url})


def pay_by_card(localstripe_url: str, payment_intent: str, number: str) -> None:
    """What Stripe.js does on the buyer's page."""
    client = sdk(localstripe_url)
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_intent, params={"payment_method": pm.id})
    client.v1.payment_intents.confirm(payment_intent)


def order_status(http: httpx.Client, merchant: Merchant, order_id: str) -> str:
    return str(http.get(f"/v1/orders/{order_id}", headers=merchant.auth()).json()["status"])


def messages(rt: Runtime, order_id: str, type_: str) -> int:
    with rt.db.read() as s:
        return int(
            s.execute(
                select(func.count())
                .select_from(m.Message)
                .where(m.Message.order_id == order_id, m.Message.type == type_)
            ).scalar_one()
        )


def events_of(http: httpx.Client, merchant: Merchant, order_id: str) -> list[dict[str, Any]]:
    r = http.get("/v1/events", headers=merchant.auth(), params={"order_id": order_id})
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def test_a_card_payment_turns_the_order_paid(http, rt, merchant, localstripe_url) -> None:  # type: ignore[no-untyped-def]
    order = create_order(http, merchant, amount=4500)
    pi = order["payment"]["payment_intent"]
    assert order["status"] == "open"

    pay_by_card(localstripe_url, pi, GOOD_CARD)

    wait_for(lambda: order_status(http, merchant, order["id"]) == "paid")
    final = http.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert final["amount_paid"] == 4500
    assert final["payments"][0]["provider_payment_id"] == pi
    assert messages(rt, order["id"], "order.paid") == 1
    succeeded = wait_for(
        lambda: [
            e
            for e in events_of(http, merchant, order["id"])
            if e["type"] == "payment_intent.succeeded" and e["status"] == "processed"
        ]
    )
    assert len(succeeded) == 1
    timeline = http.get(f"/v1/orders/{order['id']}/timeline", headers=merchant.auth()).json()
    assert "order.paid" in [t["type"] for t in timeline["data"]]


def test_a_declined_card_fails_the_order_then_a_retry_pays_it(
    http, rt, merchant, localstripe_url
) -> None:  # type: ignore[no-untyped-def]
    order = create_order(http, merchant, amount=3100)
    pi = order["payment"]["payment_intent"]

    with pytest.raises(stripe.CardError):
        pay_by_card(localstripe_url, pi, DECLINED_CARD)

    wait_for(lambda: order_status(http, merchant, order["id"]) == "failed")
    failed = events_of(http, merchant, order["id"])
    assert [e["type"] for e in failed] == ["payment_intent.payment_failed"]
    wait_for(lambda: events_of(http, merchant, order["id"])[0]["status"] == "processed")
    detail = http.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
    assert detail["payments"][0]["failure_code"] == "card_declined"
    assert messages(rt, order["id"], "order.paid") == 0

    retry = simulate.build_event(
        "payment_intent.succeeded",
        livemode=False,
        payment_intent_id=pi,
        amount=3100,
        metadata=order_meta(merchant, order),
        created=int(time.time()) + 1,
    )
    assert post_event(http, merchant, retry).status_code == 200
    wait_for(lambda: order_status(http, merchant, order["id"]) == "paid")
    assert messages(rt, order["id"], "order.paid") == 1


def test_reconcile_repairs_an_order_whose_webhook_never_came(tmp_path, rt) -> None:  # type: ignore[no-untyped-def]
    """A separate localstripe with no webhook registered: the payment happens at Stripe and
    caisse hears nothing until ``reconcile`` reads the PaymentIntent."""
    with localstripe_process() as silent_stripe:
        rt.settings = dataclasses.replace(rt.settings, stripe_api_base=silent_stripe)
        with TestClient(create_app(runtime=rt, run_worker=False)) as client:
            merchant = new_merchant(client, rt)
            order = create_order(client, merchant, amount=2600)
            other = create_order(client, merchant, amount=999)  # never paid
            pay_by_card(silent_stripe, order["payment"]["payment_intent"], GOOD_CARD)

            assert (
                client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()["status"]
                == "open"
            )
            # The PaymentIntent pass alone (the Events API pass has its own tests).
            young = reconcile(rt, events=False)  # default grace: too young to touch
            assert young.checked == 0

            report = reconcile(rt, grace=dt.timedelta(0), events=False)
            assert report.errors == []
            assert report.checked == 2
            assert report.repaired == 1
            repaired = client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()
            assert repaired["status"] == "paid"
            assert repaired["amount_paid"] == 2600
            untouched = client.get(f"/v1/orders/{other['id']}", headers=merchant.auth()).json()
            assert untouched["status"] == "open"
            assert messages(rt, order["id"], "order.paid") == 1

            again = reconcile(rt, grace=dt.timedelta(0), events=False)
            assert again.checked == 1  # the paid order is no longer waiting
            assert again.repaired == 0
            assert messages(rt, order["id"], "order.paid") == 1
