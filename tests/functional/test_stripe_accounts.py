"""Whose Stripe account a tenant is: which account events change its settings, and when the
``Stripe-Account`` header is sent (OAuth connections only), against localstripe, on both
engines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Any

import pytest
from sqlalchemy import select
from tests.functional.test_stripe_operations import get, pay_by_card
from tests.support.api import Merchant, create_order, drain, new_merchant, post_event

from caisse.config import Secret
from caisse.providers.stripe import simulate
from caisse.providers.stripe.client import StripeGateway
from caisse.reconcile import reconcile
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.connect import store_connection

OWN_ACCOUNT = "acct_1OwnKeysHotel"
PLATFORM_KEY = "sk_test_platform" + "p" * 20


def put_keys(client: Any, merchant: Merchant, account_id: str | None) -> None:
    body: dict[str, Any] = {
        "publishable_key": "pk_test_" + secrets.token_hex(12),
        "secret_key": "sk_test_" + secrets.token_hex(12),
        "webhook_secrets": [merchant.whsec["test"]],
    }
    if account_id:
        body["account_id"] = account_id
    r = client.put("/v1/providers/stripe", headers=merchant.auth(), json=body)
    assert r.status_code == 200, r.text


def event_status(rt: Runtime, provider_event_id: str) -> str:
    with rt.db.read() as s:
        return str(
            s.execute(
                select(m.InboundEvent.status).where(
                    m.InboundEvent.provider_event_id == provider_event_id
                )
            ).scalar_one()
        )


def account_update(account_field: str | None, object_id: str, charges: bool) -> dict[str, Any]:
    return simulate.build_event(
        "account.updated",
        livemode=False,
        account=account_field,
        overrides={"id": object_id, "charges_enabled": charges},
    )


# -- gap: account events unchecked for tenants without an account id ----------------------------


def test_own_keys_without_an_account_id_hear_only_of_their_own_account(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    own = account_update(None, "acct_1TheirOwn", charges=False)
    connected = account_update("acct_1SomeoneElse", "acct_1SomeoneElse", charges=True)
    for event in (own, connected):
        assert post_event(client, merchant, event).status_code == 200
    drain(rt)
    assert event_status(rt, own["id"]) == "processed"
    assert event_status(rt, connected["id"]) == "ignored"  # stored, no effect
    shown = client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["charges_enabled"] is False  # the other account's charges_enabled is not ours


def test_a_tenant_with_an_account_id_hears_only_of_that_account(client, rt) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(client, rt)
    put_keys(client, merchant, OWN_ACCOUNT)
    ours = account_update(None, OWN_ACCOUNT, charges=False)
    other = account_update(None, "acct_1NotThisOne", charges=True)
    for event in (ours, other):
        assert post_event(client, merchant, event).status_code == 200
    drain(rt)
    assert (event_status(rt, ours["id"]), event_status(rt, other["id"])) == (
        "processed",
        "ignored",
    )
    shown = client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["charges_enabled"] is False


# -- gap: Stripe-Account only for OAuth connections ---------------------------------------------


@pytest.fixture
def calls(rt: Runtime, client: Any, localstripe_url: str) -> list[tuple[str, str | None]]:
    """Every gateway caisse builds, as (secret key prefix, Stripe-Account), still calling
    localstripe for real."""
    made: list[tuple[str, str | None]] = []

    def factory(key: str, account: str | None) -> StripeGateway:
        made.append((key[:16], account))
        return StripeGateway(key, api_base=localstripe_url, account=account)

    rt.stripe_factory = factory
    return made


def test_own_keys_never_send_stripe_account_even_with_an_account_id(  # type: ignore[no-untyped-def]
    client, rt, localstripe_url, calls
) -> None:
    merchant = new_merchant(client, rt)
    put_keys(client, merchant, OWN_ACCOUNT)
    order = create_order(client, merchant, amount=1500)
    pay_by_card(localstripe_url, order["payment"]["payment_intent"])
    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=dt.timedelta(0))
    assert report.errors == []
    assert get(client, merchant, order["id"])["status"] == "paid"
    refund = client.post(
        f"/v1/orders/{order['id']}/refunds", json={"amount": 500}, headers=merchant.auth()
    )
    assert refund.status_code == 200, refund.text
    assert len(calls) >= 3  # order creation, reconcile, refund: one gateway each
    assert {account for _, account in calls} == {None}
    with rt.db.read() as s:
        row = s.get(m.Order, order["id"])
        assert row is not None
        assert row.provider_account_id == OWN_ACCOUNT  # still recorded on the order


def test_an_oauth_connection_sends_stripe_account_everywhere(  # type: ignore[no-untyped-def]
    client, rt, localstripe_url, calls
) -> None:
    rt.settings = dataclasses.replace(
        rt.settings,
        stripe_connect_client_id="ca_" + "c" * 32,
        stripe_connect_secret_keys=(Secret(PLATFORM_KEY),),
    )
    merchant = new_merchant(client, rt)
    with rt.db.write() as s:
        store_connection(s, rt, merchant.tenant_id, "test", "acct_1ViaOAuth", "pk_test_x" * 3)
    order = create_order(client, merchant, amount=1500)
    report = reconcile(rt, tenant_id=merchant.tenant_id, grace=dt.timedelta(0))
    assert report.errors == []
    assert len(calls) >= 3  # order creation, events pass, PaymentIntent pass
    assert set(calls) == {(PLATFORM_KEY[:16], "acct_1ViaOAuth")}
    assert get(client, merchant, order["id"])["status"] == "open"
