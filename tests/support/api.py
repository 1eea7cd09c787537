"""Small helpers that drive caisse the way a platform and Stripe would."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.testclient import TestClient

from caisse.jobs.worker import Worker
from caisse.providers.stripe import simulate
from caisse.providers.stripe.mapping import ORDER_METADATA_KEY, TENANT_METADATA_KEY
from caisse.runtime import Runtime

Client = TestClient | httpx.Client


@dataclass
class Merchant:
    tenant_id: str
    keys: dict[str, str]
    whsec: dict[str, str] = field(default_factory=dict)

    def auth(self, env: str = "test") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[env]}"}


def new_merchant(
    client: Client, rt: Runtime, *, name: str = "Hôtel Test", envs: tuple[str, ...] = ("test",)
) -> Merchant:
    admin = {"Authorization": f"Bearer {rt.settings.admin_token.reveal()}"}
    r = client.post("/v1/tenants", json={"name": name}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    merchant = Merchant(body["id"], body["api_keys"])
    for env in envs:
        merchant.whsec[env] = "whsec_" + secrets.token_urlsafe(24)
        r = client.put(
            "/v1/providers/stripe",
            headers=merchant.auth(env),
            json={
                "publishable_key": f"pk_{env}_" + secrets.token_hex(12),
                "secret_key": f"sk_{env}_" + secrets.token_hex(12),
                "webhook_secrets": [merchant.whsec[env]],
            },
        )
        assert r.status_code == 200, r.text
    return merchant


def order_body(amount: int = 2000, **extra: Any) -> dict[str, Any]:
    return {
        "reference": "REF-" + secrets.token_hex(3),
        "customer": {"email": "buyer@example.com", "name": "Buyer"},
        "currency": "eur",
        "lines": [{"description": "Item", "quantity": 1, "unit_amount": amount, "tax_rate": "20"}],
        **extra,
    }


def create_order(
    client: Client, merchant: Merchant, amount: int = 2000, env: str = "test"
) -> dict[str, Any]:
    r = client.post(
        "/v1/orders",
        json=order_body(amount),
        headers={**merchant.auth(env), "Idempotency-Key": secrets.token_hex(8)},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def order_meta(merchant: Merchant, order: dict[str, Any]) -> dict[str, str]:
    return {ORDER_METADATA_KEY: order["id"], TENANT_METADATA_KEY: merchant.tenant_id}


SCENARIO_T0 = 1_767_225_600
"""When the simulated scenarios of :func:`flow` start (2026-01-01 UTC)."""


def flow(
    client: Any, merchant: Merchant, name: str, amount: int = 2000, *, seed: str = "", **kw: Any
) -> tuple[str, list[dict[str, Any]]]:
    """A new order and the events of scenario ``name`` for it (``caisse simulate``'s); the
    same ids for the same ``name`` and ``seed``."""
    order = create_order(client, merchant, amount=amount)
    events = simulate.scenario(
        name,
        payment_intent_id=order["payment"]["payment_intent"],
        amount=amount,
        metadata=order_meta(merchant, order),
        created=SCENARIO_T0,
        rng=random.Random(name + seed),
        **kw,
    )
    return str(order["id"]), events


def order_event(
    merchant: Merchant, order: dict[str, Any], event_type: str, **kw: Any
) -> dict[str, Any]:
    """A test-mode ``event_type`` about ``order``'s own PaymentIntent, for its whole amount
    (``kw`` goes to ``simulate.build_event``: ``created``, ``overrides``…)."""
    return simulate.build_event(
        event_type,
        livemode=False,
        payment_intent_id=order["payment"]["payment_intent"],
        amount=order["amount_total"],
        metadata=order_meta(merchant, order),
        **kw,
    )


def succeeded_event(merchant: Merchant, order: dict[str, Any]) -> dict[str, Any]:
    """The ``payment_intent.succeeded`` event that pays ``order`` in full (test mode)."""
    return order_event(merchant, order, "payment_intent.succeeded")


def post_event(
    client: Client,
    merchant: Merchant,
    event: dict[str, Any],
    *,
    env: str = "test",
    secret: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    body, headers = simulate.signed_delivery(
        event, [secret or merchant.whsec[env]], timestamp=timestamp
    )
    return client.post(
        f"/callbacks/v1.0/stripe/{merchant.tenant_id}", content=body, headers=headers
    )


def drain(rt: Runtime) -> int:
    """Run every ready job to the end, as a worker would."""
    return asyncio.run(Worker(rt).drain())


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")
