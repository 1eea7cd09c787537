"""Helpers for partner-webhook tests through the API: register an endpoint, record a message
as the order code does (same transaction, real fan-out), read an endpoint's deliveries."""

from __future__ import annotations

from typing import Any

from caisse.orders import messages
from caisse.runtime import Runtime
from tests.support.api import Merchant


def register(client: Any, merchant: Merchant, url: str, env: str = "test", **body: Any) -> Any:
    """``POST /v1/endpoints``; the answer (with the secret in full)."""
    r = client.post("/v1/endpoints", json={"url": url, **body}, headers=merchant.auth(env))
    assert r.status_code == 201, r.text
    return r.json()


def record(rt: Runtime, merchant: Merchant, type: str = "order.paid", env: str = "test") -> str:
    """One partner message, fanned out to the matching endpoints; its id."""
    with rt.db.write() as s:
        msg = messages.record(
            s,
            tenant_id=merchant.tenant_id,
            environment=env,
            type=type,
            data={"order": {"id": "ord_test", "status": "paid"}},
            order_id="ord_test",
            now=rt.clock.now(),
        )
        return msg.id


def deliveries(
    client: Any, merchant: Merchant, endpoint_id: str, env: str = "test"
) -> list[dict[str, Any]]:
    """``GET /v1/endpoints/{id}/deliveries`` (first page, newest first)."""
    r = client.get(f"/v1/endpoints/{endpoint_id}/deliveries", headers=merchant.auth(env))
    assert r.status_code == 200, r.text
    return list(r.json()["data"])
