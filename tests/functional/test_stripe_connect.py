"""Stripe Connect onboarding against a loopback fake of Stripe's OAuth token endpoint, the
platform's Connect webhook endpoint, and deauthorization; on both engines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from tests.support.api import Merchant, drain, new_merchant
from tests.support.loopback import serve

from caisse.config import Secret
from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.tenants.connect import sign_state
from caisse.web.app import create_app

PLATFORM_KEY = "sk_test_platform" + "p" * 20
CONNECT_WHSEC = "whsec_platformconnect" + "w" * 16
CLIENT_ID = "ca_" + "c" * 32
ACCOUNT = "acct_1ConnectedHotel"


class FakeOAuth:
    """Stripe's ``POST /oauth/token``: a code is good once, and only with the platform key."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.used: set[str] = set()

    async def token(self, request: Request) -> JSONResponse:
        form = dict(await request.form())
        self.calls.append({"auth": request.headers.get("authorization"), **form})
        code = str(form.get("code"))
        if request.headers.get("authorization") != f"Bearer {PLATFORM_KEY}":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "authorization_code" or code in self.used:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "code already used"},
                status_code=400,
            )
        self.used.add(code)
        return JSONResponse(
            {
                "access_token": "sk_test_" + "t" * 24,
                "livemode": False,
                "refresh_token": "rt_" + "r" * 24,
                "scope": "read_write",
                "stripe_publishable_key": "pk_test_" + "k" * 24,
                "stripe_user_id": ACCOUNT,
                "token_type": "bearer",
            }
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeOAuth, str]]:
    oauth = FakeOAuth()
    app = Starlette(routes=[Route("/oauth/token", oauth.token, methods=["POST"])])
    with serve(app) as url:
        yield oauth, url


@pytest.fixture
def connect_client(rt: Runtime, fake: tuple[FakeOAuth, str]) -> Iterator[TestClient]:
    rt.settings = dataclasses.replace(
        rt.settings,
        stripe_api_base=fake[1],
        stripe_connect_client_id=CLIENT_ID,
        stripe_connect_secret_keys=(Secret(PLATFORM_KEY),),
        stripe_connect_webhook_secrets=(Secret(CONNECT_WHSEC),),
    )
    with TestClient(create_app(runtime=rt, run_worker=False)) as tc:
        yield tc


def connect(client: TestClient, merchant: Merchant, code: str = "ac_good") -> Any:
    r = client.get("/v1/connect/stripe/authorize", headers=merchant.auth())
    assert r.status_code == 200, r.text
    state = r.json()["state"]
    return client.get("/v1/connect/stripe/callback", params={"code": code, "state": state})


def test_authorize_url_then_callback_stores_the_connected_account(connect_client, rt, fake) -> None:  # type: ignore[no-untyped-def]
    oauth, base = fake
    merchant = new_merchant(connect_client, rt)
    r = connect_client.get("/v1/connect/stripe/authorize", headers=merchant.auth())
    assert r.status_code == 200, r.text
    url = urlsplit(r.json()["url"])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{base}/oauth/authorize"
    assert query["client_id"] == [CLIENT_ID]
    assert query["response_type"] == ["code"]
    assert query["scope"] == ["read_write"]
    assert query["redirect_uri"] == [f"{rt.settings.public_url}/v1/connect/stripe/callback"]
    state = query["state"][0]

    done = connect_client.get(
        "/v1/connect/stripe/callback", params={"code": "ac_123", "state": state}
    )
    assert done.status_code == 200, done.text
    assert done.json()["account_id"] == ACCOUNT
    assert oauth.calls[-1]["auth"] == f"Bearer {PLATFORM_KEY}"
    assert oauth.calls[-1]["code"] == "ac_123"
    shown = connect_client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["account_id"] == ACCOUNT
    assert shown["publishable_key"] == "pk_test_" + "k" * 24

    replay = connect_client.get(
        "/v1/connect/stripe/callback", params={"code": "ac_456", "state": state}
    )
    assert replay.status_code == 403  # single use, even with a fresh code
    assert len(oauth.calls) == 1


@pytest.mark.parametrize("how", ["tampered", "foreign_key", "expired", "garbage"])
def test_forged_or_stale_state_is_refused_before_stripe_is_asked(  # type: ignore[no-untyped-def]
    connect_client, rt, fake, how
) -> None:
    oauth, _ = fake
    merchant = new_merchant(connect_client, rt)
    good = connect_client.get("/v1/connect/stripe/authorize", headers=merchant.auth()).json()
    if how == "tampered":
        payload, mac = good["state"].split(".")
        state = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + mac
    elif how == "foreign_key":
        other = dataclasses.replace(rt.settings, master_keys=(Secret("x" * 44),))
        state = sign_state(other, merchant.tenant_id, "test", rt.clock.now() + dt.timedelta(1))
    elif how == "expired":
        state = sign_state(
            rt.settings, merchant.tenant_id, "test", rt.clock.now() - dt.timedelta(seconds=1)
        )
    else:
        state = secrets.token_urlsafe(40)
    r = connect_client.get("/v1/connect/stripe/callback", params={"code": "ac_1", "state": state})
    assert r.status_code == 403
    assert oauth.calls == []


def test_stripe_refusing_the_code_or_the_user_declining_is_400(connect_client, rt, fake) -> None:  # type: ignore[no-untyped-def]
    merchant = new_merchant(connect_client, rt)
    assert connect(connect_client, merchant, "ac_once").status_code == 200
    again = connect(connect_client, merchant, "ac_once")  # a fresh state, a used code
    assert again.status_code == 400
    assert "invalid_grant" in again.json()["error"]["message"]
    declined = connect_client.get(
        "/v1/connect/stripe/callback",
        params={"error": "access_denied", "error_description": "The user denied your request"},
    )
    assert declined.status_code == 400


def post_connect(client: TestClient, event: dict[str, Any], secret: str = CONNECT_WHSEC) -> Any:
    body, headers = simulate.signed_delivery(event, [secret])
    return client.post("/callbacks/v1.0/stripe/connect", content=body, headers=headers)


def test_connect_events_are_routed_by_account_and_deauthorization_stops_orders(  # type: ignore[no-untyped-def]
    connect_client, rt, fake
) -> None:
    merchant = new_merchant(connect_client, rt)
    assert connect(connect_client, merchant).status_code == 200

    updated = simulate.build_event(
        "account.updated", livemode=False, account=ACCOUNT, overrides={"charges_enabled": True}
    )
    assert post_connect(connect_client, updated).status_code == 200
    stranger = simulate.build_event("account.updated", livemode=False, account="acct_1Nobody")
    assert post_connect(connect_client, stranger).status_code == 200  # acknowledged, not stored
    live = simulate.build_event("account.updated", livemode=True, account=ACCOUNT)
    assert post_connect(connect_client, live).status_code == 200  # connected in test only
    assert post_connect(connect_client, updated, secret="whsec_" + "z" * 30).status_code == 400
    drain(rt)
    with rt.db.read() as s:
        stored = s.execute(select(m.InboundEvent.tenant_id, m.InboundEvent.provider_event_id)).all()
    assert stored == [(merchant.tenant_id, updated["id"])]
    shown = connect_client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["charges_enabled"] is True

    gone = simulate.build_event("account.application.deauthorized", livemode=False, account=ACCOUNT)
    assert post_connect(connect_client, gone).status_code == 200
    drain(rt)
    shown = connect_client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert shown["charges_enabled"] is False
    order = connect_client.post(
        "/v1/orders",
        json={
            "currency": "eur",
            "lines": [{"description": "Nuit", "quantity": 1, "unit_amount": 9000}],
        },
        headers=merchant.auth(),
    )
    assert order.status_code == 400
    assert "disabled charges" in order.json()["error"]["message"]
