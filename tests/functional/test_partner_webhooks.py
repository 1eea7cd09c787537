"""Stripe says a payment succeeded → the order is paid → the partner receives ``order.paid``,
signed per Standard Webhooks, with its API key; on both engines."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from tests.conftest import make_settings
from tests.support import partners
from tests.support.api import create_order, drain, new_merchant, post_event, succeeded_event

from caisse.config import Settings
from caisse.jobs.worker import Worker
from caisse.runtime import Runtime
from caisse.storage import jobs as jobstore
from caisse.storage import models as m


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url, allow_private_targets=True)


def test_stripe_payment_reaches_the_partner_signed(client: Any, rt: Runtime) -> None:
    merchant = new_merchant(client, rt)
    api_key = secrets.token_urlsafe(32)
    with partners.ok() as partner:
        r = client.post(
            "/v1/endpoints",
            json={"url": partner.url, "api_key": api_key, "event_types": ["order.paid"]},
            headers=merchant.auth(),
        )
        assert r.status_code == 201
        endpoint = r.json()
        assert set(endpoint) >= {"id", "url", "secret"}
        order = create_order(client, merchant)
        event = succeeded_event(merchant, order)
        assert post_event(client, merchant, event).status_code == 200
        drain(rt)
        [request] = partner.requests
    message = Webhook(endpoint["secret"]).verify(request.body, request.header_dict)
    assert message["type"] == "order.paid"
    assert message["data"]["order"]["id"] == order["id"]
    assert message["data"]["order"]["status"] == "paid"
    assert message["data"]["order"]["amount_paid"] == order["amount_total"]
    assert request.header("x-api-key") == api_key
    assert client.get(f"/v1/orders/{order['id']}", headers=merchant.auth()).json()["status"] == (
        "paid"
    )
    r = client.get(f"/v1/endpoints/{endpoint['id']}/deliveries", headers=merchant.auth())
    [delivery] = r.json()["data"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"][0]["webhook_id"] == request.header("webhook-id")
    messages = client.get(
        f"/v1/messages?order_id={order['id']}&type=order.paid", headers=merchant.auth()
    )
    assert [d["status"] for d in messages.json()["data"][0]["deliveries"]] == ["delivered"]


def test_the_worker_sends_what_an_event_makes_in_the_same_round(
    client: Any, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processing transaction hands its deliveries to the worker already claimed: one
    worker round processes the event and delivers, with no claim of the deliver job between."""
    merchant = new_merchant(client, rt)
    claimed: list[str] = []
    claim = jobstore.claim

    def counted(*args: Any, **kwargs: Any) -> list[jobstore.ClaimedJob]:
        jobs = claim(*args, **kwargs)
        claimed.extend(j.kind for j in jobs)
        return jobs

    monkeypatch.setattr(jobstore, "claim", counted)
    with partners.ok() as partner:
        r = client.post("/v1/endpoints", json={"url": partner.url}, headers=merchant.auth())
        assert r.status_code == 201
        endpoint = r.json()
        order = create_order(client, merchant)
        event = succeeded_event(merchant, order)
        assert post_event(client, merchant, event).status_code == 200
        asyncio.run(Worker(rt, worker_id="w-round").run_once())
        [request] = partner.requests
    message = Webhook(endpoint["secret"]).verify(request.body, request.header_dict)
    assert (message["type"], message["data"]["order"]["id"]) == ("order.paid", order["id"])
    assert "deliver" not in claimed
    with rt.db.read() as s:
        job = s.execute(select(m.Job).where(m.Job.kind == "deliver")).scalar_one()
    assert (job.status, job.locked_by, job.attempts) == ("done", "w-round", 1)
