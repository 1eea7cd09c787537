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

from caisse import ids
from caisse.config import Secret
from caisse.errors import Conflict
from caisse.providers.stripe import simulate
from caisse.runtime import Runtime
from caisse.storage import models as m
from caisse.storage.sql import conflict_on_duplicate
from caisse.tenants.connect import sign_state
from caisse.tenants.credentials import ACCOUNT_TAKEN
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
        self.account_reads: list[dict[str, Any]] = []

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

    async def account(self, request: Request) -> JSONResponse:
        """``GET /v1/account`` on behalf of the connected account (``Stripe-Account``)."""
        self.account_reads.append(
            {
                "auth": request.headers.get("authorization"),
                "stripe_account": request.headers.get("stripe-account"),
            }
        )
        if request.headers.get("stripe-account") != ACCOUNT:
            return JSONResponse({"error": {"type": "invalid_request_error"}}, status_code=403)
        return JSONResponse(
            {
                "id": ACCOUNT,
                "object": "account",
                "charges_enabled": True,
                "payouts_enabled": False,
                "requirements": {"currently_due": ["external_account"], "past_due": []},
            }
        )


@pytest.fixture
def fake() -> Iterator[tuple[FakeOAuth, str]]:
    oauth = FakeOAuth()
    app = Starlette(
        routes=[
            Route("/oauth/token", oauth.token, methods=["POST"]),
            Route("/v1/account", oauth.account, methods=["GET"]),
        ]
    )
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


def test_the_connected_account_is_read_at_once(connect_client, rt, fake) -> None:  # type: ignore[no-untyped-def]
    oauth, _ = fake
    merchant = new_merchant(connect_client, rt)
    done = connect(connect_client, merchant)
    assert done.status_code == 200, done.text
    assert done.json()["charges_enabled"] is True
    assert oauth.account_reads == [{"auth": f"Bearer {PLATFORM_KEY}", "stripe_account": ACCOUNT}]
    shown = connect_client.get("/v1/providers/stripe", headers=merchant.auth()).json()
    assert (shown["charges_enabled"], shown["payouts_enabled"]) == (True, False)
    assert shown["requirements_due"] == ["external_account"]
    assert shown["connected_via"] == "oauth"


def test_an_account_is_bound_to_one_tenant(connect_client, rt, fake) -> None:  # type: ignore[no-untyped-def]
    first = new_merchant(connect_client, rt, name="Hôtel A")
    second = new_merchant(connect_client, rt, name="Hôtel B")
    assert connect(connect_client, first, "ac_first").status_code == 200

    taken = connect(connect_client, second, "ac_second")
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["code"] == "conflict"
    assert taken.json()["error"]["param"] == "account_id"
    typed = connect_client.put(
        "/v1/providers/stripe",
        headers=second.auth(),
        json={
            "publishable_key": "pk_test_" + "b" * 24,
            "secret_key": "sk_test_" + "b" * 24,
            "webhook_secrets": [second.whsec["test"]],
            "account_id": ACCOUNT,
        },
    )
    assert typed.status_code == 409, typed.text
    assert typed.json()["error"]["param"] == "account_id"
    with rt.db.read() as s:
        owners = s.scalars(
            select(m.ProviderAccount.tenant_id).where(
                m.ProviderAccount.provider_account_id == ACCOUNT
            )
        ).all()
    assert owners == [first.tenant_id]
    # Events for the account still reach its one tenant.
    event = simulate.build_event("account.updated", livemode=False, account=ACCOUNT)
    assert post_connect(connect_client, event).status_code == 200
    drain(rt)
    with rt.db.read() as s:
        stored = s.scalars(select(m.InboundEvent.tenant_id)).all()
    assert stored == [first.tenant_id]


def _two_tenants_one_account(rt: Runtime) -> None:
    """Two tenants holding one account, written without the check (as a race would)."""
    now = rt.clock.now()
    with rt.db.write() as s:
        for name in ("A", "B"):
            tenant = m.Tenant(id=ids.new_id("tenant"), name=name, created_at=now)
            s.add(tenant)
            s.flush()
            s.add(
                m.ProviderAccount(
                    id=ids.new_id("provider_account"),
                    tenant_id=tenant.id,
                    environment="test",
                    provider="stripe",
                    provider_account_id=ACCOUNT,
                    created_at=now,
                    updated_at=now,
                )
            )
        with conflict_on_duplicate(ACCOUNT_TAKEN):
            s.flush()


def test_the_unique_index_backs_the_check(rt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Conflict, match="already connected"):
        _two_tenants_one_account(rt)
    with rt.db.read() as s:
        assert s.scalars(select(m.ProviderAccount)).all() == []  # rolled back whole
